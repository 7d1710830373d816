package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// BasePath is the prefix every serving.knative.dev/v1 resource lives under.
const BasePath = "/apis/" + v1.APIVersion

// maxBody bounds a request body; Knative objects are a few KiB.
const maxBody = 1 << 20

// Options configure the API server.
type Options struct {
	// Token is the bootstrap bearer token: its holder is the cluster-admin
	// BootstrapSubject. Other callers present a token issued through the
	// tokens API or a client certificate (when the listener asks for one).
	// Optional; with neither Token nor Insecure set only issued credentials
	// work, and on a fresh cluster none exists, so it fails closed.
	Token string
	// Insecure serves without authentication; only for tests and
	// loopback-only dev setups.
	Insecure bool
	// SecretKeys seal secrets at rest. Optional: nil stores them in plain
	// text.
	SecretKeys *encryption.Keys
	// Gateway is the edge the knative-serving/kiln-gateway Service
	// describes. Optional: nil serves no such Service.
	Gateway *GatewayEndpoint
	// NodeTLS is the client TLS config for the agents' node API (pod
	// logs), presenting the apiserver's certificate. Optional: nil calls
	// it over plain HTTP.
	NodeTLS *tls.Config
}

type server struct {
	res  map[string]resource // by resKey(group, resource)
	st   store.Store         // config/ documents only (configs.go)
	opts Options
	log  *slog.Logger
	// nodeClient calls the agents' node API.
	nodeClient *http.Client
}

// New returns the API handler. With an empty Token and Insecure unset every
// request is refused, so a misconfigured server fails closed.
func New(reg *registry.Registry, opts Options, log *slog.Logger) http.Handler {
	s := &server{res: resources(reg), st: reg.Store(), opts: opts, log: log.With("component", "apiserver"),
		nodeClient: &http.Client{Transport: &http.Transport{TLSClientConfig: opts.NodeTLS, ResponseHeaderTimeout: 30 * time.Second}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	// Every serving resource, DomainMappings' two versions included, goes
	// through the one handler set; the descriptor comes from the path.
	for _, base := range []string{BasePath, BetaPath, AlphaPath} {
		ns := base + "/namespaces/{ns}/{resource}"
		mux.Handle("GET "+base+"/{resource}", s.auth(s.handleList))
		mux.Handle("GET "+ns, s.auth(s.handleList))
		mux.Handle("POST "+ns, s.auth(s.handleCreate))
		mux.Handle("DELETE "+base+"/{resource}", s.auth(s.handleDeleteCollection))
		mux.Handle("DELETE "+ns, s.auth(s.handleDeleteCollection))
		mux.Handle("GET "+ns+"/{name}", s.auth(s.handleGet))
		mux.Handle("PUT "+ns+"/{name}", s.auth(s.handleUpdate))
		mux.Handle("PATCH "+ns+"/{name}", s.auth(s.handlePatch))
		mux.Handle("DELETE "+ns+"/{name}", s.auth(s.handleDelete))
		mux.Handle("GET "+ns+"/{name}/status", s.auth(s.handleGet))
		mux.Handle("PUT "+ns+"/{name}/status", s.auth(s.handleStatusWrite))
		mux.Handle("PATCH "+ns+"/{name}/status", s.auth(s.handleStatusWrite))
	}
	s.registerConfigs(mux)
	s.registerSecrets(mux, secret.New(reg.Store(), opts.SecretKeys))
	s.registerTokens(mux)
	nss := s.registerNamespaces(mux)
	s.registerConfigMaps(mux)
	s.registerPersistentVolumeClaims(mux)
	s.registerViews(mux)
	mux.Handle(CorePath+"/", s.auth(s.handleCoreUnknown))
	s.registerDiscovery(mux)
	return guardInput(s.namespaceGuard(nss, mux))
}

// notFoundPath is Kubernetes' answer for a path it serves nothing at.
func notFoundPath() error {
	return &k8serrors.StatusError{ErrStatus: Status{Status: k8smeta.StatusFailure, Code: http.StatusNotFound,
		Reason: k8smeta.StatusReasonNotFound, Message: "the server could not find the requested resource", Details: &StatusDetails{}}}
}

// lookup resolves the path's descriptor and kind; it answers 404 itself
// when unknown.
func (s *server) lookup(w http.ResponseWriter, r *http.Request) (apiResource, resource, bool) {
	a, ok := resourceFromPath(r.URL.Path)
	res, found := s.res[resKey(a.Group, a.Resource)]
	if !ok || !found {
		writeError(w, notFoundPath(), "", "")
		return a, nil, false
	}
	return a, res, true
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error, kind, name string) {
	s.writeStatus(w, r, err, statusFor(err, kind, name))
}

// failFor answers err in Kubernetes' words for a's objects.
func (s *server) failFor(w http.ResponseWriter, r *http.Request, err error, a apiResource, name string) {
	s.writeStatus(w, r, err, statusForResource(err, a, name))
}

func (s *server) writeStatus(w http.ResponseWriter, r *http.Request, err error, st Status) {
	if st.Code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", st.Code, "error", err)
	}
	writeJSON(w, int(st.Code), st)
}

func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if isWatch(r) {
		s.handleWatchNamed(w, r, a, res)
		return
	}
	obj, err := res.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.failFor(w, r, err, a, r.PathValue("name"))
		return
	}
	if wantsTable(r) {
		writeTable(w, r, a, []any{obj}, "", "")
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// handleStatusWrite serves PUT and PATCH on .../NAME/status as Kubernetes
// serves a custom resource's status subresource: only the status of the
// object sent (or of the patched object) is taken, spec and metadata stay
// as stored, and the write is a CAS on the stored resourceVersion (a
// resourceVersion sent must be the stored one). The authorizer lets only
// cluster-admins write status (a controller-like client); kiln's
// controller, which writes status straight to the store, overwrites it at
// its next reconcile, as Knative's controllers do.
func (s *server) handleStatusWrite(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	dry, err := dryRun(r)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	var body []byte
	if r.Method == http.MethodPut {
		body, err = readBody(r)
	} else {
		body, err = readRaw(r)
	}
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := res.get(r.Context(), ns, name)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		curJSON, err := marshalObject(cur)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		sentJSON := body
		if r.Method == http.MethodPatch {
			sentJSON, err = patchStatus(curJSON, mediaType(r), body)
			if err != nil {
				s.failFor(w, r, err, a, name)
				return
			}
		}
		sent, err := decodeObject(r, res, sentJSON)
		if err == nil {
			err = fillTarget(sent, ns, name)
		}
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		userRV := sent.Meta().ResourceVersion
		if userRV != "" && userRV != cur.Meta().ResourceVersion {
			s.failFor(w, r, errdefs.ErrConflict, a, name)
			return
		}
		obj, err := decodeObject(r, res, curJSON)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		obj.Meta().ResourceVersion = cur.Meta().ResourceVersion
		res.keepStatus(obj, sent)
		if dry {
			writeJSON(w, http.StatusOK, obj)
			return
		}
		updated, err := res.update(r.Context(), obj)
		if errdefs.IsConflict(err) && userRV == "" && attempt < casRetries {
			continue
		}
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		s.log.Info("status written", "kind", res.kind(), "namespace", ns, "name", name, "resource_version", updated.Meta().ResourceVersion)
		writeJSON(w, http.StatusOK, updated)
		return
	}
}

// statusPatchTypes are the patches a status write takes.
var statusPatchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType)}

// patchStatus applies a JSON or merge patch to the stored object's JSON
// (server-side apply of status is not served).
func patchStatus(live []byte, contentType string, patch []byte) ([]byte, error) {
	if !slices.Contains(statusPatchTypes, contentType) {
		return nil, unsupportedMediaType(statusPatchTypes)
	}
	if !json.Valid(patch) {
		return nil, k8serrors.NewBadRequest("invalid JSON patch")
	}
	return applyJSONPatch(types.PatchType(contentType), live, patch)
}

// List is the wire shape of a list response.
type List struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ListMeta    `json:"metadata"`
	Items      []v1.Object `json:"items"`
}

// ListMeta is a list's metadata: resourceVersion, continue, remainingItemCount.
type ListMeta = k8smeta.ListMeta

// readObject reads the body (JSON or YAML), decodes it strictly and checks
// it is of res's kind.
func readObject(r *http.Request, res resource) (v1.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return decodeObject(r, res, body)
}

func decodeObject(r *http.Request, res resource, body []byte) (v1.Object, error) {
	obj, err := decodeFor(res, body)
	if err != nil {
		return nil, badRequest(err)
	}
	if got := fmt.Sprintf("%T", obj); got != fmt.Sprintf("%T", res.newObject()) {
		return nil, badRequest(fmt.Errorf("the kind of the provided object does not match the resource %q: %w", r.PathValue("resource"), errdefs.ErrInvalidArgument))
	}
	return obj, nil
}

func dryRun(r *http.Request) (bool, error) {
	switch v := r.URL.Query()["dryRun"]; {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && v[0] == k8smeta.DryRunAll:
		return true, nil
	default:
		return false, badRequest(fmt.Errorf("dryRun=%q: only All is supported: %w", v, errdefs.ErrInvalidArgument))
	}
}

// fillTarget fills the namespace from the URL and checks the object names
// the namespace (and, when given, the name) the request is sent to.
func fillTarget(obj v1.Object, ns, name string) error {
	m := obj.Meta()
	if m.Namespace == "" {
		m.Namespace = ns
	}
	if m.Namespace != ns {
		return badRequest(fmt.Errorf("the namespace of the provided object does not match the namespace sent on the request"))
	}
	if name != "" && m.Name != name {
		return badRequest(fmt.Errorf("the name of the object (%s) does not match the name on the URL (%s)", m.Name, name))
	}
	return nil
}

// admit defaults and validates obj, as Knative's webhook does. It runs
// after the write's managed fields are recorded, so (as on Kubernetes,
// where the field manager runs before admission webhooks) the defaults it
// fills are owned by no field manager. It returns the FieldError (as an
// error) when invalid.
func admit(ctx context.Context, obj v1.Object) error {
	obj.SetDefaults(ctx)
	if fe := obj.Validate(ctx); fe != nil {
		return fe
	}
	return nil
}

func (s *server) handleCreate(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if !res.userWritable() && !createdByClients(res) {
		s.failFor(w, r, k8serrors.NewMethodNotSupported(a.GroupResource(), "create"), a, "")
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	obj, err := readObject(r, res)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	created, code, err := s.create(r, a, res, obj, dry, "Update")
	if err != nil {
		s.failFor(w, r, err, a, obj.Meta().Name)
		return
	}
	writeJSON(w, code, created)
}

// generateNameRetries bounds the names tried for one generateName create.
const generateNameRetries = 8

// create admits and stores a new object (or only admits it with dry), the
// path of POST and of an apply that creates.
func (s *server) create(r *http.Request, a apiResource, res resource, obj v1.Object, dry bool, operation string) (v1.Object, int, error) {
	ctx, err := s.configContext(r.Context())
	if err != nil {
		return nil, 0, err
	}
	m := obj.Meta()
	generate := m.Name == "" && m.GenerateName != ""
	if generate {
		m.Name = generatedName(m.GenerateName)
		if err := checkGenerateName(a, m.GenerateName, m.Name); err != nil {
			return nil, 0, err
		}
	}
	if err := fillTarget(obj, r.PathValue("ns"), ""); err != nil {
		return nil, 0, err
	}
	// Status and server-owned metadata are never taken from the user.
	res.keepStatus(obj, res.newObject())
	m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp, m.DeletionTimestamp = "", "", 0, nil, nil
	// The writer owns the fields it sent (an apply's are patchObject's to
	// record); the defaults admit adds are owned by no manager.
	if operation != "Apply" {
		if obj, err = withManagedFields(a, res, r, nil, obj, fieldManager(r), operation); err != nil {
			return nil, 0, err
		}
	}
	m = obj.Meta()
	setCreator(ctx, a, obj)
	if err := admit(ctx, obj); err != nil {
		return nil, 0, err
	}
	if err := s.admitRevision(ctx, obj); err != nil {
		return nil, 0, err
	}
	if dry {
		if _, err := res.get(ctx, m.Namespace, m.Name); err == nil {
			return nil, 0, fmt.Errorf("%s %q: %w", a.Resource, m.Name, errdefs.ErrAlreadyExists)
		} else if !errdefs.IsNotFound(err) {
			return nil, 0, err
		}
		m.Generation = 1
		m.UID = metav1.NewUID()
		m.CreationTimestamp = metav1.NewTime(time.Now())
		return obj, http.StatusCreated, nil
	}
	for attempt := 0; ; attempt++ {
		created, err := res.create(ctx, obj)
		if generate && errdefs.IsAlreadyExists(err) && attempt < generateNameRetries {
			m.Name = generatedName(m.GenerateName)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		s.log.Info("created", "kind", res.kind(), "namespace", m.Namespace, "name", m.Name, "resource_version", created.Meta().ResourceVersion)
		return created, http.StatusCreated, nil
	}
}

// casRetries bounds how often an update without resourceVersion is retried
// when the controller writes status underneath it.
const casRetries = 5

func (s *server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if !res.userWritable() {
		s.failFor(w, r, k8serrors.NewMethodNotSupported(a.GroupResource(), "update"), a, name)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	obj, err := readObject(r, res)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	ctx, err := s.configContext(r.Context())
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	if err := fillTarget(obj, r.PathValue("ns"), name); err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	sent, err := marshalObject(obj)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	userRV := obj.Meta().ResourceVersion
	if err := checkResourceVersion(userRV); err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := res.get(ctx, obj.Meta().Namespace, name)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		if userRV != "" && userRV != cur.Meta().ResourceVersion {
			s.failFor(w, r, errdefs.ErrConflict, a, name)
			return
		}
		// update changes the object it is given: each attempt starts from
		// the object as the client sent it.
		obj, err := decodeObject(r, res, sent)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		updated, err := s.update(ctx, r, a, res, cur, obj, dry, "Update")
		if errdefs.IsConflict(err) && userRV == "" && attempt < casRetries {
			continue
		}
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		writeJSON(w, http.StatusOK, updated)
		return
	}
}

// update records the write's managed fields on obj as the client sent it
// (an apply's are patchObject's to record), then admits it and writes it
// over cur with a CAS on cur's resourceVersion; with dry it only answers
// what would be stored.
func (s *server) update(ctx context.Context, r *http.Request, a apiResource, res resource, cur, obj v1.Object, dry bool, operation string) (v1.Object, error) {
	// The stored status wins: only the controller writes status. Pinning
	// the CAS to the revision we copied it from keeps it from going stale.
	res.keepStatus(obj, cur)
	obj.Meta().ResourceVersion = cur.Meta().ResourceVersion
	if operation != "Apply" {
		var err error
		if obj, err = withManagedFields(a, res, r, cur, obj, fieldManager(r), operation); err != nil {
			return nil, err
		}
	}
	if err := admit(ctx, obj); err != nil {
		return nil, err
	}
	keepCreator(ctx, a, cur, obj)
	if fe := v1.ValidateUpdate(ctx, cur, obj); fe != nil {
		return nil, fe
	}
	if dry {
		m, cm := obj.Meta(), cur.Meta()
		m.UID, m.CreationTimestamp, m.Generation = cm.UID, cm.CreationTimestamp, cm.Generation
		return obj, nil
	}
	updated, err := res.update(ctx, obj)
	if err != nil {
		return nil, err
	}
	m := updated.Meta()
	s.log.Info("updated", "kind", res.kind(), "namespace", m.Namespace, "name", m.Name,
		"generation", m.Generation, "resource_version", m.ResourceVersion)
	return updated, nil
}

func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	opts, err := deleteOptions(r)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	cur, err := s.deleteOne(r.Context(), a, res, r.PathValue("ns"), name, opts)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	// Kubernetes answers a custom resource deleted at once with a Success
	// Status naming it (no code), not the object.
	writeJSON(w, http.StatusOK, deletedStatus(a, cur.Meta()))
}

// deleteOne deletes ns/name with a CAS on the revision read (or, with
// dryRun, only checks it could), retried when the controller writes in
// between. It returns the object as it was when deleted.
func (s *server) deleteOne(ctx context.Context, a apiResource, res resource, ns, name string, opts *k8smeta.DeleteOptions) (v1.Object, error) {
	for attempt := 0; ; attempt++ {
		cur, err := res.get(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		if err := checkPreconditions(a, name, opts.Preconditions, cur.Meta()); err != nil {
			return nil, err
		}
		if len(opts.DryRun) > 0 {
			return cur, nil
		}
		if orphans(opts) {
			if err := s.orphan(ctx, cur.Meta()); err != nil {
				return nil, err
			}
		}
		rv, _ := strconv.ParseInt(cur.Meta().ResourceVersion, 10, 64)
		err = res.delete(ctx, ns, name, store.IfRevision(rv))
		if (errdefs.IsConflict(err) || errdefs.IsNotFound(err)) && attempt < casRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		policy := k8smeta.DeletePropagationBackground
		if opts.PropagationPolicy != nil {
			policy = *opts.PropagationPolicy
		}
		s.log.Info("deleted", "kind", res.kind(), "namespace", ns, "name", name, "propagation", policy)
		return cur, nil
	}
}

// handleDeleteCollection serves DELETE on a collection (deletecollection)
// as Kubernetes does: it lists the objects the label and field selectors
// match, deletes each with the request's DeleteOptions, and answers the
// list of the objects deleted (as they were), at the list's
// resourceVersion. An object deleted meanwhile by someone else is left out.
func (s *server) handleDeleteCollection(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	listOpts, err := parseListOptions(r)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	opts, err := deleteOptions(r)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	items, rev, err := res.list(r.Context(), r.PathValue("ns"), 0)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	m := matcherFor(listOpts)
	deleted := make([]v1.Object, 0, len(items))
	for _, o := range items {
		if !m.matches(o) {
			continue
		}
		cur, err := s.deleteOne(r.Context(), a, res, o.Meta().Namespace, o.Meta().Name, opts)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			s.failFor(w, r, err, a, o.Meta().Name)
			return
		}
		deleted = append(deleted, cur)
	}
	writeJSON(w, http.StatusOK, List{APIVersion: listAPIVersion(res), Kind: a.Kind + "List",
		Metadata: ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: deleted})
}

// deletedStatus is the body of a delete that removed the object.
func deletedStatus(a apiResource, m *metav1.ObjectMeta) Status {
	return Status{TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: k8smeta.StatusSuccess,
		Details: &StatusDetails{Name: m.Name, Group: a.Group, Kind: a.Resource, UID: types.UID(m.UID)}}
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "true" || v == "1"
}

// errorBody is an error's Status with the Kubernetes type meta, the object
// of an ERROR watch event.
func errorBody(err error, a apiResource) Status {
	return statusForResource(err, a, "")
}

// errExpired reports a resourceVersion older than the store's compaction.
func errExpired(msg string) error { return k8serrors.NewResourceExpired(msg) }

// isExpired reports whether err is the store's compaction sentinel.
func isExpired(err error) bool { return errors.Is(err, errdefs.ErrExpired) }

// marshalObject is the object's JSON as the API returns it.
func marshalObject(obj v1.Object) ([]byte, error) { return json.Marshal(obj) }
