package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/secret"
)

// SecretsPath is where TLS secrets live, as in Kubernetes' core API.
const SecretsPath = "/api/" + corev1.APIVersion

// registerSecrets serves /api/v1/namespaces/{ns}/secrets. Secrets are
// write-mostly: responses never carry the private key (tls.key), which only
// the xds role reads from the store to hand to edges over SDS. Besides the
// bearer token, an --insecure server serves secrets to loopback clients only.
func (s *server) registerSecrets(mux *http.ServeMux, ss *secret.Store) {
	h := &secretHandlers{s: s, ss: ss}
	ns := SecretsPath + "/namespaces/{ns}/secrets"
	mux.Handle("GET "+SecretsPath+"/secrets", s.auth(h.guard(h.list)))
	mux.Handle("GET "+ns, s.auth(h.guard(h.list)))
	mux.Handle("POST "+ns, s.auth(h.guard(h.create)))
	mux.Handle("GET "+ns+"/{name}", s.auth(h.guard(h.get)))
	mux.Handle("PUT "+ns+"/{name}", s.auth(h.guard(h.update)))
	mux.Handle("DELETE "+ns+"/{name}", s.auth(h.guard(h.delete)))
}

type secretHandlers struct {
	s  *server
	ss *secret.Store
}

func (h *secretHandlers) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.s.opts.Insecure && !loopback(r.RemoteAddr) {
			h.s.fail(w, r, fmt.Errorf("secrets are served to authenticated or loopback clients only: %w", errdefs.ErrUnauthorized), corev1.KindSecret, r.PathValue("name"))
			return
		}
		next(w, r)
	}
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SecretList is the wire shape of a secret list.
type SecretList struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Metadata   ListMeta         `json:"metadata"`
	Items      []*corev1.Secret `json:"items"`
}

func (h *secretHandlers) list(w http.ResponseWriter, r *http.Request) {
	items, rev, err := h.ss.List(r.Context(), r.PathValue("ns"))
	if err != nil {
		h.s.fail(w, r, err, corev1.KindSecret, "")
		return
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Metadata, items[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	for i := range items {
		items[i] = secret.Redact(items[i])
	}
	writeJSON(w, http.StatusOK, SecretList{APIVersion: corev1.APIVersion, Kind: "SecretList",
		Metadata: ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: items})
}

func (h *secretHandlers) get(w http.ResponseWriter, r *http.Request) {
	sec, err := h.ss.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		h.s.fail(w, r, err, corev1.KindSecret, r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, secret.Redact(sec))
}

// read decodes, defaults and validates a secret from the body.
func (h *secretHandlers) read(r *http.Request, name string) (*corev1.Secret, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest(fmt.Errorf("read body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if len(body) > maxBody {
		return nil, badRequest(fmt.Errorf("request body larger than %d bytes: %w", maxBody, errdefs.ErrInvalidArgument))
	}
	sec := &corev1.Secret{}
	if err := json.Unmarshal(body, sec); err != nil {
		return nil, badRequest(fmt.Errorf("decode Secret: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if sec.Kind != "" && (sec.Kind != corev1.KindSecret || sec.APIVersion != corev1.APIVersion) {
		return nil, badRequest(fmt.Errorf("the kind of the provided object (%s %s) does not match the resource \"secrets\": %w", sec.APIVersion, sec.Kind, errdefs.ErrInvalidArgument))
	}
	ns := r.PathValue("ns")
	if sec.Metadata.Namespace == "" {
		sec.Metadata.Namespace = ns
	}
	if sec.Metadata.Namespace != ns {
		return nil, badRequest(fmt.Errorf("the namespace of the provided object (%q) does not match the namespace sent on the request (%q): %w", sec.Metadata.Namespace, ns, errdefs.ErrInvalidArgument))
	}
	if name != "" && sec.Metadata.Name != name {
		return nil, badRequest(fmt.Errorf("the name of the object (%q) does not match the name on the URL (%q): %w", sec.Metadata.Name, name, errdefs.ErrInvalidArgument))
	}
	if err := checkResourceVersion(sec.Metadata.ResourceVersion); err != nil {
		return nil, err
	}
	if n := sec.Metadata.Name; n != "" && (len(n) > 63 || !dns1123Label.MatchString(n)) {
		// The name becomes part of the store key.
		return nil, fmt.Errorf("Secret %q is invalid: %w", n, v1.ErrInvalidValue(n, "metadata.name", labelMessage))
	}
	sec.SetDefaults()
	if fe := sec.Validate(); fe != nil {
		return nil, fmt.Errorf("Secret %q is invalid: %w", sec.Metadata.Name, fe)
	}
	return sec, nil
}

func (h *secretHandlers) create(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	if err == nil {
		var sec *corev1.Secret
		if sec, err = h.read(r, ""); err == nil {
			if dry {
				writeJSON(w, http.StatusCreated, secret.Redact(sec))
				return
			}
			if sec, err = h.ss.Create(r.Context(), sec); err == nil {
				h.s.log.Info("created", "kind", corev1.KindSecret, "namespace", sec.Metadata.Namespace, "name", sec.Metadata.Name)
				writeJSON(w, http.StatusCreated, secret.Redact(sec))
				return
			}
		}
	}
	h.s.fail(w, r, err, corev1.KindSecret, "")
}

func (h *secretHandlers) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sec, err := h.read(r, name)
	if err == nil {
		if sec, err = h.ss.Update(r.Context(), sec); err == nil {
			h.s.log.Info("updated", "kind", corev1.KindSecret, "namespace", sec.Metadata.Namespace, "name", name)
			writeJSON(w, http.StatusOK, secret.Redact(sec))
			return
		}
	}
	h.s.fail(w, r, err, corev1.KindSecret, name)
}

func (h *secretHandlers) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.ss.Delete(r.Context(), ns, name); err != nil {
		h.s.fail(w, r, err, corev1.KindSecret, name)
		return
	}
	h.s.log.Info("deleted", "kind", corev1.KindSecret, "namespace", ns, "name", name)
	writeJSON(w, http.StatusOK, successStatus("", corev1.KindSecret, name))
}
