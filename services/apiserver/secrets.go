package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/secret"
	k8scorev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	mux.Handle("PATCH "+ns+"/{name}", s.auth(h.guard(h.patch)))
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

var secretsGR = schema.GroupResource{Resource: corev1.ResourceSecret}

func (h *secretHandlers) list(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "secrets", secretSource(h.s.st, h.s.opts.SecretKeys), "type")
		return
	}
	items, rev, err := h.ss.List(r.Context(), r.PathValue("ns"))
	if err != nil {
		h.s.coreFail(w, r, err, secretsGR, "")
		return
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Metadata, items[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace", "type")
	}
	if err != nil {
		h.s.coreFail(w, r, err, secretsGR, "")
		return
	}
	out := &k8scorev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: []k8scorev1.Secret{}}
	for _, sec := range items {
		m := sec.Metadata
		if !ls.Matches(labels.Set(m.Labels)) || !fs.Matches(fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace, "type": sec.Type}) {
			continue
		}
		k, err := toK8sSecret(secret.Redact(sec))
		if err != nil {
			h.s.coreFail(w, r, err, secretsGR, "")
			return
		}
		out.Items = append(out.Items, *k)
	}
	writeCore(w, r, http.StatusOK, out)
}

func (h *secretHandlers) get(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "secrets", secretSource(h.s.st, h.s.opts.SecretKeys), "type")
		return
	}
	sec, err := h.ss.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		h.s.coreFail(w, r, err, secretsGR, r.PathValue("name"))
		return
	}
	writeSecret(w, r, http.StatusOK, sec)
}

// read decodes (JSON, YAML or protobuf), defaults and validates a secret
// from the body.
func (h *secretHandlers) read(r *http.Request, name string) (*corev1.Secret, error) {
	in := &k8scorev1.Secret{}
	if err := readCoreObject(r, in, corev1.ResourceSecret); err != nil {
		return nil, err
	}
	return h.admit(r, in, name)
}

// admit turns a k8s.io/api Secret into kiln's, checks it against the URL,
// defaults and validates it, and strips secret material from kubectl's
// last-applied-configuration annotation.
func (h *secretHandlers) admit(r *http.Request, in *k8scorev1.Secret, name string) (*corev1.Secret, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{}
	if err := json.Unmarshal(b, sec); err != nil {
		return nil, badRequest(fmt.Errorf("decode Secret: %v: %w", err, errdefs.ErrInvalidArgument))
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
	if err := stripLastApplied(sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// lastApplied is the annotation in which kubectl apply keeps the whole
// manifest it applied, secret values included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// stripLastApplied drops data and stringData from the last-applied
// annotation, so key material given to kubectl apply is stored only in the
// (encrypted) data and never comes back in the annotation. kubectl's next
// apply then sees every data key as new and sends it again, which is
// harmless.
func stripLastApplied(sec *corev1.Secret) error {
	v, ok := sec.Metadata.Annotations[lastApplied]
	if !ok {
		return nil
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(v), &doc); err != nil {
		// Not kubectl's JSON: drop it rather than store what it may hold.
		delete(sec.Metadata.Annotations, lastApplied)
		return nil
	}
	delete(doc, "data")
	delete(doc, "stringData")
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	sec.Metadata.Annotations[lastApplied] = string(b) + "\n"
	return nil
}

// writeSecret answers sec without its secret material, in Kubernetes'
// Secret shape and the encoding the client prefers.
func writeSecret(w http.ResponseWriter, r *http.Request, code int, sec *corev1.Secret) {
	out, err := toK8sSecret(secret.Redact(sec))
	if err != nil {
		writeError(w, err, corev1.KindSecret, sec.Metadata.Name)
		return
	}
	writeCore(w, r, code, out)
}

func toK8sSecret(sec *corev1.Secret) (*k8scorev1.Secret, error) {
	b, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	out := &k8scorev1.Secret{}
	return out, json.Unmarshal(b, out)
}

func (h *secretHandlers) create(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	if err == nil {
		var sec *corev1.Secret
		if sec, err = h.read(r, ""); err == nil {
			if dry {
				writeSecret(w, r, http.StatusCreated, sec)
				return
			}
			if sec, err = h.ss.Create(r.Context(), sec); err == nil {
				h.s.log.Info("created", "kind", corev1.KindSecret, "namespace", sec.Metadata.Namespace, "name", sec.Metadata.Name)
				writeSecret(w, r, http.StatusCreated, sec)
				return
			}
		}
	}
	h.s.coreFail(w, r, err, secretsGR, "")
}

func (h *secretHandlers) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sec, err := h.read(r, name)
	if err == nil {
		if sec, err = h.ss.Update(r.Context(), sec); err == nil {
			h.s.log.Info("updated", "kind", corev1.KindSecret, "namespace", sec.Metadata.Namespace, "name", name)
			writeSecret(w, r, http.StatusOK, sec)
			return
		}
	}
	h.s.coreFail(w, r, err, secretsGR, name)
}

func (h *secretHandlers) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.ss.Delete(r.Context(), ns, name); err != nil {
		h.s.coreFail(w, r, err, secretsGR, name)
		return
	}
	h.s.log.Info("deleted", "kind", corev1.KindSecret, "namespace", ns, "name", name)
	writeCore(w, r, http.StatusOK, deleted(secretsGR, name))
}

// patch applies a strategic merge, JSON merge or JSON patch to the stored
// secret — key material included, so `kubectl apply` of an unchanged
// manifest keeps the key — and stores the validated result with a
// compare-and-swap on the revision read.
func (h *secretHandlers) patch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	fail := func(err error) { h.s.coreFail(w, r, err, secretsGR, name) }
	dry, pt, body, err := readDryRunPatch(r)
	if err != nil {
		fail(err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := h.ss.Get(ctx, ns, name)
		if err != nil {
			fail(err)
			return
		}
		curK, err := toK8sSecret(cur)
		if err != nil {
			fail(err)
			return
		}
		in, err := patchCore[k8scorev1.Secret](pt, curK, body, "Secret")
		if err != nil {
			fail(err)
			return
		}
		sec, err := h.admit(r, in, name)
		if err != nil {
			fail(err)
			return
		}
		if dry {
			writeSecret(w, r, http.StatusOK, sec)
			return
		}
		pinned := sec.Metadata.ResourceVersion != cur.Metadata.ResourceVersion
		sec.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		if pinned {
			fail(apierrors.NewConflict(secretsGR, name, errors.New("the object has been modified; please apply your changes to the latest version and try again")))
			return
		}
		out, err := h.ss.Update(ctx, sec)
		if (errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err)) && attempt < patchRetries {
			continue
		}
		if err != nil {
			fail(err)
			return
		}
		h.s.log.Info("patched", "kind", corev1.KindSecret, "namespace", ns, "name", name)
		writeSecret(w, r, http.StatusOK, out)
		return
	}
}
