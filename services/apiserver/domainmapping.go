package apiserver

import (
	"net/http"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/registry"
)

// Base paths of the DomainMapping group versions. v1alpha1 is served for
// manifests and clients written against it; objects are stored (and
// returned) as v1beta1, the same shape.
const (
	BetaPath  = "/apis/" + v1beta1.APIVersion
	AlphaPath = "/apis/" + v1beta1.APIVersionAlpha
)

// bodyDecoder is implemented by resources whose documents are not
// serving.knative.dev/v1.
type bodyDecoder interface {
	decode(body []byte) (v1.Object, error)
}

// versioned is implemented by resources listed under another apiVersion.
type versioned interface {
	apiVersion() string
}

// decodeFor decodes a request body for res.
func decodeFor(res resource, body []byte) (v1.Object, error) {
	if d, ok := res.(bodyDecoder); ok {
		return d.decode(body)
	}
	return v1.Decode(body)
}

// listAPIVersion is the apiVersion of res's List documents.
func listAPIVersion(res resource) string {
	if v, ok := res.(versioned); ok {
		return v.apiVersion()
	}
	return v1.APIVersion
}

type domainMappings struct {
	*typed[v1beta1.DomainMapping, *v1beta1.DomainMapping]
}

func (domainMappings) decode(body []byte) (v1.Object, error) {
	dm, err := v1beta1.Decode(body)
	if err != nil {
		return nil, err
	}
	return dm, nil
}

func (domainMappings) apiVersion() string { return v1beta1.APIVersion }

// registerDomainMappings serves DomainMappings with the same handlers as
// the v1 kinds, from a server whose only resource is domainmappings, so a
// v1 path never resolves a DomainMapping and vice versa.
func (s *server) registerDomainMappings(mux *http.ServeMux, reg *registry.Registry) {
	beta := &server{
		res: map[string]resource{v1beta1.ResourceDomainMapping: domainMappings{&typed[v1beta1.DomainMapping, *v1beta1.DomainMapping]{
			c: reg.DomainMappings(), writable: true,
			copyStatus: func(d, s *v1beta1.DomainMapping) { d.Status = s.Status },
		}}},
		st: s.st, opts: s.opts, log: s.log,
	}
	for _, base := range []string{BetaPath, AlphaPath} {
		ns := base + "/namespaces/{ns}/{resource}"
		mux.Handle("GET "+base+"/{resource}", beta.auth(beta.handleList))
		mux.Handle("GET "+ns, beta.auth(beta.handleList))
		mux.Handle("POST "+ns, beta.auth(beta.handleCreate))
		mux.Handle("GET "+ns+"/{name}", beta.auth(beta.handleGet))
		mux.Handle("PUT "+ns+"/{name}", beta.auth(beta.handleUpdate))
		mux.Handle("DELETE "+ns+"/{name}", beta.auth(beta.handleDelete))
	}
}
