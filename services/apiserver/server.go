package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

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
}

type server struct {
	res  map[string]resource
	st   store.Store // config/ documents only (configs.go)
	opts Options
	log  *slog.Logger
}

// New returns the API handler. With an empty Token and Insecure unset every
// request is refused, so a misconfigured server fails closed.
func New(reg *registry.Registry, opts Options, log *slog.Logger) http.Handler {
	s := &server{res: resources(reg), st: reg.Store(), opts: opts, log: log.With("component", "apiserver")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	ns := BasePath + "/namespaces/{ns}/{resource}"
	mux.Handle("GET "+BasePath+"/{resource}", s.auth(s.handleList))
	mux.Handle("GET "+ns, s.auth(s.handleList))
	mux.Handle("POST "+ns, s.auth(s.handleCreate))
	mux.Handle("GET "+ns+"/{name}", s.auth(s.handleGet))
	mux.Handle("PUT "+ns+"/{name}", s.auth(s.handleUpdate))
	mux.Handle("DELETE "+ns+"/{name}", s.auth(s.handleDelete))
	s.registerConfigs(mux)
	s.registerDomainMappings(mux, reg)
	s.registerSecrets(mux, secret.New(reg.Store(), opts.SecretKeys))
	s.registerTokens(mux)
	nss := s.registerNamespaces(mux)
	s.registerConfigMaps(mux)
	mux.Handle(CorePath+"/", s.auth(s.handleCoreUnknown))
	s.registerDiscovery(mux)
	return guardInput(s.namespaceGuard(nss, mux))
}

// lookup resolves {resource}; it answers 404 itself when unknown.
func (s *server) lookup(w http.ResponseWriter, r *http.Request) (resource, bool) {
	res, ok := s.res[r.PathValue("resource")]
	if !ok {
		writeError(w, fmt.Errorf("the server could not find the requested resource %q: %w", r.PathValue("resource"), errdefs.ErrNotFound), "", "")
	}
	return res, ok
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error, kind, name string) {
	st := statusFor(err, kind, name)
	if st.Code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", st.Code, "error", err)
	}
	writeJSON(w, st.Code, st)
}

func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if isWatch(r) {
		s.serveWatch(w, r, res, r.PathValue("name"))
		return
	}
	obj, err := res.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err, res.kind(), r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// List is the wire shape of a list response.
type List struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ListMeta        `json:"metadata"`
	Items      json.RawMessage `json:"items"`
}

// ListMeta carries the revision to start a watch after.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion"`
}

func (s *server) handleList(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if isWatch(r) {
		s.serveWatch(w, r, res, "")
		return
	}
	items, rev, err := res.list(r.Context(), r.PathValue("ns"))
	if err != nil {
		s.fail(w, r, err, res.kind(), "")
		return
	}
	b, err := json.Marshal(items)
	if err != nil {
		s.fail(w, r, err, res.kind(), "")
		return
	}
	writeJSON(w, http.StatusOK, List{APIVersion: listAPIVersion(res), Kind: res.kind() + "List",
		Metadata: ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: b})
}

// readObject decodes the body strictly and checks it is of res's kind.
func readObject(r *http.Request, res resource) (v1.Object, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest(fmt.Errorf("read body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if len(body) > maxBody {
		return nil, badRequest(fmt.Errorf("request body larger than %d bytes: %w", maxBody, errdefs.ErrInvalidArgument))
	}
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
	switch v := r.URL.Query().Get("dryRun"); v {
	case "":
		return false, nil
	case "All":
		return true, nil
	default:
		return false, badRequest(fmt.Errorf("dryRun=%q: only All is supported: %w", v, errdefs.ErrInvalidArgument))
	}
}

// admit fills the namespace from the URL, checks it matches, defaults and
// validates. It returns the FieldError (as an error) when invalid.
func admit(ctx context.Context, kind string, obj v1.Object, ns, name string) error {
	m := obj.Meta()
	if m.Namespace == "" {
		m.Namespace = ns
	}
	if m.Namespace != ns {
		return badRequest(fmt.Errorf("the namespace of the provided object (%q) does not match the namespace sent on the request (%q): %w", m.Namespace, ns, errdefs.ErrInvalidArgument))
	}
	if name != "" && m.Name != name {
		return badRequest(fmt.Errorf("the name of the object (%q) does not match the name on the URL (%q): %w", m.Name, name, errdefs.ErrInvalidArgument))
	}
	obj.SetDefaults(ctx)
	if fe := obj.Validate(ctx); fe != nil {
		return fmt.Errorf("%s %q is invalid: %w", kind, m.Name, fe)
	}
	return nil
}

func (s *server) handleCreate(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if !res.userWritable() && !createdByClients(res) {
		s.fail(w, r, methodNotAllowed(fmt.Errorf("%s objects are created by the controller", res.kind())), res.kind(), "")
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.fail(w, r, err, res.kind(), "")
		return
	}
	obj, err := readObject(r, res)
	if err != nil {
		s.fail(w, r, err, res.kind(), "")
		return
	}
	name := obj.Meta().Name
	if ctx, err = s.configContext(ctx); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	if err := admit(ctx, res.kind(), obj, r.PathValue("ns"), ""); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	if err := s.admitRevision(ctx, obj); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	// Status and server-owned metadata are never taken from the user.
	res.keepStatus(obj, res.newObject())
	m := obj.Meta()
	m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp, m.DeletionTimestamp = "", "", 0, nil, nil
	if dry {
		if _, err := res.get(ctx, m.Namespace, m.Name); err == nil {
			s.fail(w, r, fmt.Errorf("%s %q already exists in namespace %q: %w", res.kind(), m.Name, m.Namespace, errdefs.ErrAlreadyExists), res.kind(), m.Name)
			return
		} else if !errdefs.IsNotFound(err) {
			s.fail(w, r, err, res.kind(), m.Name)
			return
		}
		m.Generation = 1
		m.CreationTimestamp = metav1.NewTime(time.Now())
		writeJSON(w, http.StatusCreated, obj)
		return
	}
	created, err := res.create(ctx, obj)
	if err != nil {
		s.fail(w, r, err, res.kind(), m.Name)
		return
	}
	s.log.Info("created", "kind", res.kind(), "namespace", m.Namespace, "name", m.Name, "resource_version", created.Meta().ResourceVersion)
	writeJSON(w, http.StatusCreated, created)
}

// casRetries bounds how often an update without resourceVersion is retried
// when the controller writes status underneath it.
const casRetries = 5

func (s *server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	name := r.PathValue("name")
	if !res.userWritable() {
		s.fail(w, r, methodNotAllowed(fmt.Errorf("%s objects are immutable and written by the controller", res.kind())), res.kind(), name)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	obj, err := readObject(r, res)
	if err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	if ctx, err = s.configContext(ctx); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	if err := admit(ctx, res.kind(), obj, r.PathValue("ns"), name); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	m := obj.Meta()
	userRV := m.ResourceVersion
	if err := checkResourceVersion(userRV); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := res.get(ctx, m.Namespace, name)
		if err != nil {
			s.fail(w, r, err, res.kind(), name)
			return
		}
		if userRV != "" && userRV != cur.Meta().ResourceVersion {
			s.fail(w, r, fmt.Errorf("Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again: %w",
				res.kind(), name, errdefs.ErrConflict), res.kind(), name)
			return
		}
		if fe := v1.ValidateUpdate(ctx, cur, obj); fe != nil {
			s.fail(w, r, fmt.Errorf("%s %q is invalid: %w", res.kind(), name, fe), res.kind(), name)
			return
		}
		if fe := v1.ValidateUpdate(ctx, cur, obj); fe != nil {
			s.fail(w, r, fmt.Errorf("%s %q is invalid: %w", res.kind(), name, fe), res.kind(), name)
			return
		}
		// The stored status wins: only the controller writes status. Pinning
		// the CAS to the revision we copied it from keeps it from going stale.
		res.keepStatus(obj, cur)
		m.ResourceVersion = cur.Meta().ResourceVersion
		if dry {
			cm := cur.Meta()
			m.UID, m.CreationTimestamp, m.Generation = cm.UID, cm.CreationTimestamp, cm.Generation
			writeJSON(w, http.StatusOK, obj)
			return
		}
		updated, err := res.update(ctx, obj)
		if errdefs.IsConflict(err) && userRV == "" && attempt < casRetries {
			continue
		}
		if err != nil {
			s.fail(w, r, err, res.kind(), name)
			return
		}
		s.log.Info("updated", "kind", res.kind(), "namespace", m.Namespace, "name", name,
			"generation", updated.Meta().Generation, "resource_version", updated.Meta().ResourceVersion)
		writeJSON(w, http.StatusOK, updated)
		return
	}
}

func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := res.delete(r.Context(), ns, name); err != nil {
		s.fail(w, r, err, res.kind(), name)
		return
	}
	s.log.Info("deleted", "kind", res.kind(), "namespace", ns, "name", name)
	writeJSON(w, http.StatusOK, Status{APIVersion: "v1", Kind: "Status", Status: "Success", Code: http.StatusOK,
		Details: &StatusDetails{Kind: res.kind(), Name: name}})
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "true" || v == "1"
}

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// serveWatch streams newline-delimited WatchEvents. With resourceVersion=N
// it sends every change after N; without, it first sends the current
// objects as ADDED, like Kubernetes. name, when set, filters to one object.
func (s *server) serveWatch(w http.ResponseWriter, r *http.Request, res resource, name string) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ns := r.PathValue("ns")
	flusher, _ := w.(http.Flusher)
	var initial []v1.Object
	var from int64
	if v := r.URL.Query().Get("resourceVersion"); v != "" && v != "0" {
		rv, err := strconv.ParseInt(v, 10, 64)
		if err != nil || rv < 0 {
			s.fail(w, r, badRequest(fmt.Errorf("resourceVersion %q: %w", v, errdefs.ErrInvalidArgument)), res.kind(), name)
			return
		}
		from = rv + 1
	} else {
		items, rev, err := res.list(ctx, ns)
		if err != nil {
			s.fail(w, r, err, res.kind(), name)
			return
		}
		initial, from = items, rev+1
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev WatchEvent) bool {
		if err := enc.Encode(ev); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for _, o := range initial {
		if name == "" || o.Meta().Name == name {
			if !send(WatchEvent{Type: string(registry.Added), Object: o}) {
				return
			}
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	for ev := range res.watch(ctx, ns, from) {
		if ev.Err != nil {
			st := statusFor(ev.Err, res.kind(), name)
			if errors.Is(ev.Err, context.Canceled) {
				return
			}
			send(WatchEvent{Type: "ERROR", Object: st})
			return
		}
		if ev.Object == nil || (name != "" && ev.Object.Meta().Name != name) {
			continue
		}
		if !send(WatchEvent{Type: string(ev.Type), Object: ev.Object}) {
			return
		}
	}
}
