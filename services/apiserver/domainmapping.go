package apiserver

import (
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
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
