package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/errdefs"
	kilnmeta "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/store"
)

// CorePath is the base path of the core/v1 group.
const CorePath = "/api/v1"

// Namespaces that always exist, with or without a record: kiln's objects
// default to "default", and Knative's configs live in "knative-serving".
// Neither may be deleted.
const (
	defaultNamespace = "default"
	servingNamespace = "knative-serving"
)

var (
	namespacesGR      = schema.GroupResource{Resource: "namespaces"}
	serviceAccountsGR = schema.GroupResource{Resource: "serviceaccounts"}
)

func builtinNamespace(name string) bool { return name == defaultNamespace || name == servingNamespace }

// namespaceStore reads and writes namespace records. The apiserver is the
// only writer of namespaces/.
type namespaceStore struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// get returns the namespace name: its record, or an Active namespace for a
// built-in one without a record. Errors: a Kubernetes NotFound.
func (n *namespaceStore) get(ctx context.Context, name string) (*corev1.Namespace, error) {
	kv, err := n.st.Get(ctx, store.NamespaceKey(name))
	if errdefs.IsNotFound(err) {
		if builtinNamespace(name) {
			return implicitNamespace(name), nil
		}
		return nil, apierrors.NewNotFound(namespacesGR, name)
	}
	if err != nil {
		return nil, err
	}
	return decodeNamespace(kv)
}

func implicitNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
}

func decodeNamespace(kv store.KV) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := json.Unmarshal(kv.Value, ns); err != nil {
		return nil, fmt.Errorf("decode namespace %s: %w", kv.Key, err)
	}
	ns.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return ns, nil
}

// list returns every recorded namespace plus the built-in ones, sorted by
// name, and the revision read at.
func (n *namespaceStore) list(ctx context.Context) ([]corev1.Namespace, int64, error) {
	kvs, rev, err := n.st.List(ctx, store.NamespacesPrefix)
	if err != nil {
		return nil, 0, err
	}
	seen := map[string]bool{}
	var out []corev1.Namespace
	for _, kv := range kvs {
		ns, err := decodeNamespace(kv)
		if err != nil {
			return nil, 0, err
		}
		seen[ns.Name] = true
		out = append(out, *ns)
	}
	for _, b := range []string{defaultNamespace, servingNamespace} {
		if !seen[b] {
			out = append(out, *implicitNamespace(b))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, rev, nil
}

// terminating reports whether namespace name is being deleted.
func (n *namespaceStore) terminating(ctx context.Context, name string) (bool, error) {
	kv, err := n.st.Get(ctx, store.NamespaceKey(name))
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ns, err := decodeNamespace(kv)
	if err != nil {
		return false, err
	}
	return ns.Status.Phase == corev1.NamespaceTerminating, nil
}

func (n *namespaceStore) put(ctx context.Context, ns *corev1.Namespace, rev int64) (*corev1.Namespace, error) {
	ns.ResourceVersion = ""
	b, err := json.Marshal(ns)
	if err != nil {
		return nil, err
	}
	newRev, err := n.st.Put(ctx, store.NamespaceKey(ns.Name), b, store.IfRevision(rev))
	if err != nil {
		return nil, err
	}
	ns.ResourceVersion = strconv.FormatInt(newRev, 10)
	return ns, nil
}

// markTerminating records that name is being deleted, creating the record
// It returns the Terminating namespace.
func (n *namespaceStore) markTerminating(ctx context.Context, name string) (*corev1.Namespace, error) {
	for attempt := 0; ; attempt++ {
		kv, err := n.st.Get(ctx, store.NamespaceKey(name))
		switch {
		case errdefs.IsNotFound(err):
			return nil, apierrors.NewNotFound(namespacesGR, name)
		case err != nil:
			return nil, err
		}
		ns, err := decodeNamespace(kv)
		if err != nil {
			return nil, err
		}
		if ns.Status.Phase == corev1.NamespaceTerminating {
			return ns, nil
		}
		now := metav1.NewTime(n.now().UTC().Truncate(time.Second))
		ns.DeletionTimestamp = &now
		ns.Status.Phase = corev1.NamespaceTerminating
		out, err := n.put(ctx, ns, kv.ModRevision)
		if errdefs.IsConflict(err) && attempt < casRetries {
			continue
		}
		return out, err
	}
}

// registryOrder deletes a namespace's Services and DomainMappings before
// the objects the controller derives from them, so it does not recreate a
// child whose parent is still there.
func registryOrder(resource string) int {
	switch resource {
	case "services", "domainmappings":
		return 0
	case "configurations", "routes":
		return 1
	default:
		return 2
	}
}

// finish deletes every object in a Terminating namespace — serving objects
// of every kind under registry/, domain mappings, secrets, ConfigMaps and
// PersistentVolumeClaims (not their node directories) — and then its
// record. It is idempotent: an apiserver that stopped half-way
// leaves the record Terminating, and the next sweep calls finish again. A
// pass that finds nothing left ends it, so a create that passed the
// Terminating check just before the namespace was marked is caught by the
// next pass.
func (n *namespaceStore) finish(ctx context.Context, name string) error {
	const maxPasses = 10
	for pass := 0; pass < maxPasses; pass++ {
		removed, err := n.deleteContents(ctx, name)
		if err != nil {
			return fmt.Errorf("delete contents of namespace %q: %w", name, err)
		}
		if removed == 0 {
			err := n.st.Delete(ctx, store.NamespaceKey(name))
			if err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete namespace %q: %w", name, err)
			}
			n.log.Info("namespace deleted", "namespace", name, "passes", pass+1)
			return nil
		}
	}
	return fmt.Errorf("namespace %q still has content after %d passes", name, maxPasses)
}

// deleteContents deletes what the namespace holds now and says how many
// keys it removed.
func (n *namespaceStore) deleteContents(ctx context.Context, ns string) (int, error) {
	kvs, _, err := n.st.List(ctx, store.RegistryPrefix)
	if err != nil {
		return 0, err
	}
	type obj struct {
		key   string
		order int
	}
	var objs []obj
	for _, kv := range kvs {
		// registry/<group>/<resource>/<namespace>/<name>
		parts := strings.Split(strings.TrimPrefix(kv.Key, store.RegistryPrefix), "/")
		if len(parts) == 4 && parts[2] == ns {
			objs = append(objs, obj{kv.Key, registryOrder(parts[1])})
		}
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].order < objs[j].order })
	for _, prefix := range []string{store.SecretListPrefix(ns), store.ConfigMapListPrefix(ns), store.PersistentVolumeClaimListPrefix(ns)} {
		kvs, _, err := n.st.List(ctx, prefix)
		if err != nil {
			return 0, err
		}
		for _, kv := range kvs {
			objs = append(objs, obj{key: kv.Key})
		}
	}
	removed := 0
	for _, o := range objs {
		if err := n.st.Delete(ctx, o.key); err != nil && !errdefs.IsNotFound(err) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// sweep finishes every namespace left Terminating.
func (n *namespaceStore) sweep(ctx context.Context) error {
	kvs, _, err := n.st.List(ctx, store.NamespacesPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, kv := range kvs {
		ns, err := decodeNamespace(kv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ns.Status.Phase == corev1.NamespaceTerminating {
			errs = append(errs, n.finish(ctx, ns.Name))
		}
	}
	return errors.Join(errs...)
}

// SweepInterval is how often FinishNamespaceDeletions looks for namespaces
// left Terminating.
const SweepInterval = time.Minute

// FinishNamespaceDeletions resumes the deletion of every namespace left
// Terminating (by an apiserver that stopped mid-way), at start and every
// SweepInterval, until ctx ends. Each apiserver replica runs it; deletions
// are idempotent, so replicas racing on one namespace do no harm.
func FinishNamespaceDeletions(ctx context.Context, st store.Store, log *slog.Logger) error {
	n := &namespaceStore{st: st, log: log.With("component", "apiserver"), now: time.Now}
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		if err := n.sweep(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("namespace deletion sweep", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// registerNamespaces serves /api/v1/namespaces and each namespace's
// read-only default ServiceAccount.
func (s *server) registerNamespaces(mux *http.ServeMux) *namespaceStore {
	h := &namespaceHandlers{s: s, ns: &namespaceStore{st: s.st, log: s.log, now: time.Now}}
	mux.Handle("GET "+CorePath+"/namespaces", s.auth(h.list))
	mux.Handle("POST "+CorePath+"/namespaces", s.auth(h.create))
	mux.Handle("GET "+CorePath+"/namespaces/{name}", s.auth(h.get))
	mux.Handle("PUT "+CorePath+"/namespaces/{name}", s.auth(h.update))
	mux.Handle("PATCH "+CorePath+"/namespaces/{name}", s.auth(h.patch))
	mux.Handle("DELETE "+CorePath+"/namespaces/{name}", s.auth(h.delete))
	mux.Handle("GET "+CorePath+"/serviceaccounts", s.auth(h.listServiceAccounts))
	mux.Handle("GET "+CorePath+"/namespaces/{ns}/serviceaccounts", s.auth(h.listServiceAccounts))
	mux.Handle("GET "+CorePath+"/namespaces/{ns}/serviceaccounts/{name}", s.auth(h.getServiceAccount))
	return h.ns
}

type namespaceHandlers struct {
	s  *server
	ns *namespaceStore
}

func (h *namespaceHandlers) get(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "namespaces", namespaceSource(h.s.st), "status.phase")
		return
	}
	ns, err := h.ns.get(r.Context(), r.PathValue("name"))
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, r.PathValue("name"))
		return
	}
	writeCore(w, r, http.StatusOK, ns)
}

// selectors parses labelSelector and fieldSelector.
func selectors(r *http.Request) (labels.Selector, fields.Selector, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	return ls, fs, nil
}

// checkFields refuses field selectors on fields other than allowed, as
// Kubernetes does.
func checkFields(fs fields.Selector, allowed ...string) error {
	for _, req := range fs.Requirements() {
		ok := false
		for _, a := range allowed {
			ok = ok || req.Field == a
		}
		if !ok {
			return apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return nil
}

func (h *namespaceHandlers) list(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "namespaces", namespaceSource(h.s.st), "status.phase")
		return
	}
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "status.phase")
	}
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, "")
		return
	}
	items, rev, err := h.ns.list(r.Context())
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, "")
		return
	}
	out := &corev1.NamespaceList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: []corev1.Namespace{}}
	for _, ns := range items {
		f := fields.Set{"metadata.name": ns.Name, "status.phase": string(ns.Status.Phase)}
		if ls.Matches(labels.Set(ns.Labels)) && fs.Matches(f) {
			out.Items = append(out.Items, ns)
		}
	}
	writeCore(w, r, http.StatusOK, out)
}

func (h *namespaceHandlers) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in := &corev1.Namespace{}
	if err := readCoreObject(r, in, "namespaces"); err != nil {
		h.s.coreFail(w, r, err, namespacesGR, "")
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, "")
		return
	}
	if in.Name == "" && in.GenerateName != "" {
		in.Name = in.GenerateName + utilrand.String(5)
	}
	if errs := validateNamespace(in); len(errs) > 0 {
		h.s.coreFail(w, r, apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, in.Name, errs), namespacesGR, in.Name)
		return
	}
	if builtinNamespace(in.Name) {
		h.s.coreFail(w, r, apierrors.NewAlreadyExists(namespacesGR, in.Name), namespacesGR, in.Name)
		return
	}
	ns := &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Labels: in.Labels, Annotations: in.Annotations,
			UID: types.UID(kilnmeta.NewUID()), CreationTimestamp: metav1.NewTime(time.Now().UTC().Truncate(time.Second))},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	if dry {
		if _, err := h.ns.get(ctx, ns.Name); err == nil {
			h.s.coreFail(w, r, apierrors.NewAlreadyExists(namespacesGR, ns.Name), namespacesGR, ns.Name)
			return
		}
		writeCore(w, r, http.StatusCreated, ns)
		return
	}
	out, err := h.ns.put(ctx, ns, 0)
	if errdefs.IsAlreadyExists(err) || errdefs.IsConflict(err) {
		err = apierrors.NewAlreadyExists(namespacesGR, ns.Name)
	}
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, ns.Name)
		return
	}
	h.s.log.Info("created", "kind", "Namespace", "name", ns.Name, "resource_version", out.ResourceVersion)
	writeCore(w, r, http.StatusCreated, out)
}

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	if ns.Name == "" {
		return append(errs, field.Required(name, "name or generateName is required"))
	}
	for _, msg := range validation.IsDNS1123Label(ns.Name) {
		errs = append(errs, field.Invalid(name, ns.Name, msg))
	}
	for k, v := range ns.Labels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels"), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels"), v, msg))
		}
	}
	return errs
}

// update replaces a namespace's labels and annotations (the only fields a
// user sets); a set resourceVersion is a compare-and-swap.
func (h *namespaceHandlers) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	in := &corev1.Namespace{}
	if err := readCoreObject(r, in, "namespaces"); err != nil {
		h.s.coreFail(w, r, err, namespacesGR, name)
		return
	}
	if in.Name != name {
		h.s.coreFail(w, r, apierrors.NewBadRequest("the name of the object ("+in.Name+") does not match the name on the URL ("+name+")"), namespacesGR, name)
		return
	}
	h.write(w, r, name, func(cur *corev1.Namespace) (*corev1.Namespace, bool, error) {
		return in, in.ResourceVersion != "", nil
	})
}

// patch applies a strategic merge, merge or JSON patch to a namespace (kubectl
// label, kubectl apply of a Namespace manifest).
func (h *namespaceHandlers) patch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	pt, body, err := readPatch(r)
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, name)
		return
	}
	h.write(w, r, name, func(cur *corev1.Namespace) (*corev1.Namespace, bool, error) {
		out, err := patchCore[corev1.Namespace](pt, cur, body, "Namespace")
		if err != nil {
			return nil, false, err
		}
		return out, out.ResourceVersion != cur.ResourceVersion, nil
	})
}

// write stores the labels and annotations change computes from the current
// namespace, with a compare-and-swap on the revision read (a built-in
// namespace without a record gets one); replayed on a concurrent change
// unless the change pinned a resourceVersion.
func (h *namespaceHandlers) write(w http.ResponseWriter, r *http.Request, name string,
	change func(cur *corev1.Namespace) (*corev1.Namespace, bool, error)) {
	ctx := r.Context()
	fail := func(err error) { h.s.coreFail(w, r, err, namespacesGR, name) }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := h.ns.get(ctx, name)
		if err != nil {
			fail(err)
			return
		}
		rev := mustRev(cur.ResourceVersion)
		want, pinned, err := change(cur.DeepCopy())
		if err != nil {
			fail(err)
			return
		}
		if pinned && want.ResourceVersion != cur.ResourceVersion {
			fail(apierrors.NewConflict(namespacesGR, name, errors.New("the object has been modified; please apply your changes to the latest version and try again")))
			return
		}
		next := cur.DeepCopy()
		next.Labels, next.Annotations = want.Labels, want.Annotations
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		next.Labels[corev1.LabelMetadataName] = name
		if errs := validateNamespace(next); len(errs) > 0 {
			fail(apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, name, errs))
			return
		}
		if dry {
			writeCore(w, r, http.StatusOK, next)
			return
		}
		if next.UID == "" {
			next.UID = types.UID(kilnmeta.NewUID())
		}
		out, err := h.ns.put(ctx, next, rev)
		if (errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err)) && !pinned && attempt < casRetries {
			continue
		}
		if errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err) {
			err = apierrors.NewConflict(namespacesGR, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		if err != nil {
			fail(err)
			return
		}
		h.s.log.Info("updated", "kind", "Namespace", "name", name, "resource_version", out.ResourceVersion)
		writeCore(w, r, http.StatusOK, out)
		return
	}
}

// delete marks the namespace Terminating, deletes its contents and then its
// record, and answers the Terminating namespace, as Kubernetes does. The
// deletion is not tied to the client: it outlives a client that leaves, and
// the sweep resumes it after an apiserver restart.
func (h *namespaceHandlers) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if builtinNamespace(name) {
		h.s.coreFail(w, r, apierrors.NewForbidden(namespacesGR, name, errors.New("this namespace may not be deleted")), namespacesGR, name)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, name)
		return
	}
	if dry {
		ns, err := h.ns.get(r.Context(), name)
		if err != nil {
			h.s.coreFail(w, r, err, namespacesGR, name)
			return
		}
		writeCore(w, r, http.StatusOK, ns)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	ns, err := h.ns.markTerminating(ctx, name)
	if err != nil {
		h.s.coreFail(w, r, err, namespacesGR, name)
		return
	}
	h.s.log.Info("namespace terminating", "namespace", name)
	if err := h.ns.finish(ctx, name); err != nil {
		// The record stays Terminating; the sweep retries.
		h.s.log.Warn("namespace deletion incomplete", "namespace", name, "error", err)
	}
	writeCore(w, r, http.StatusOK, ns)
}

// serviceAccount is the read-only default ServiceAccount every namespace has.
func serviceAccount(ns string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
	}
}

func (h *namespaceHandlers) getServiceAccount(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if name != "default" {
		h.s.coreFail(w, r, apierrors.NewNotFound(serviceAccountsGR, name), serviceAccountsGR, name)
		return
	}
	writeCore(w, r, http.StatusOK, serviceAccount(ns))
}

func (h *namespaceHandlers) listServiceAccounts(w http.ResponseWriter, r *http.Request) {
	if h.s.refuseWatch(w, r, serviceAccountsGR) {
		return
	}
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace")
	}
	if err != nil {
		h.s.coreFail(w, r, err, serviceAccountsGR, "")
		return
	}
	names := []string{r.PathValue("ns")}
	var rev int64
	if names[0] == "" {
		items, listRev, err := h.ns.list(r.Context())
		if err != nil {
			h.s.coreFail(w, r, err, serviceAccountsGR, "")
			return
		}
		names, rev = names[:0], listRev
		for _, ns := range items {
			names = append(names, ns.Name)
		}
	}
	out := &corev1.ServiceAccountList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: []corev1.ServiceAccount{}}
	for _, ns := range names {
		sa := serviceAccount(ns)
		if ls.Matches(labels.Set(sa.Labels)) && fs.Matches(fields.Set{"metadata.name": sa.Name, "metadata.namespace": ns}) {
			out.Items = append(out.Items, *sa)
		}
	}
	writeCore(w, r, http.StatusOK, out)
}

// namespaceGuard refuses writes into a namespace that is being deleted,
// with Kubernetes' NamespaceLifecycle answer. Kubernetes refuses creates
// only; kiln refuses updates and patches too, since nothing in a
// Terminating namespace outlives its deletion. A namespace without a
// record is implicit and accepts writes, as kiln always has.
func (s *server) namespaceGuard(ns *namespaceStore, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			next.ServeHTTP(w, r)
			return
		}
		a := requestAttributes(r)
		if a.Namespace == "" || a.Resource == "namespaces" {
			next.ServeHTTP(w, r)
			return
		}
		term, err := ns.terminating(r.Context(), a.Namespace)
		if err != nil {
			s.fail(w, r, err, a.Resource, a.Name)
			return
		}
		if term {
			gr := schema.GroupResource{Group: a.Group, Resource: a.Resource}
			name := a.Name
			if name == "" {
				name = bodyName(r)
			}
			err := apierrors.NewForbidden(gr, name,
				fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause,
				Message: fmt.Sprintf("namespace %s is being terminated", a.Namespace), Field: "metadata.namespace"}}
			s.coreFail(w, r, err, gr, name)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bodyName reads metadata.name from a JSON create body, for the message of
// a refusal, and puts the body back; "" when it is not JSON.
func bodyName(r *http.Request) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	var obj struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(body, &obj)
	return obj.Metadata.Name
}

// handleCoreUnknown answers every /api/v1 request no handler serves: 405
// for a method a served resource does not take (e.g. writes to the
// read-only serviceaccounts), Kubernetes' 404 for anything else (events,
// endpoints, ... are not served), never a silent success.
func (s *server) handleCoreUnknown(w http.ResponseWriter, r *http.Request) {
	a := requestAttributes(r)
	if _, ok := findAPIResource("", "v1", a.Resource); ok {
		s.coreFail(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: a.Resource}, a.Verb), schema.GroupResource{Resource: a.Resource}, a.Name)
		return
	}
	s.coreFail(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
		Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{}}}, schema.GroupResource{}, "")
}
