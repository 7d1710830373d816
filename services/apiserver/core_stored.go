package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/errdefs"
	kilnmeta "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/store"
)

// coreObject is a pointer to a namespaced core/v1 type of k8s.io/api, such
// as *corev1.ConfigMap.
type coreObject[T any] interface {
	*T
	runtime.Object
	metav1.ObjectMetaAccessor
}

func objectMeta[T any, PT coreObject[T]](o PT) *metav1.ObjectMeta {
	return o.GetObjectMeta().(*metav1.ObjectMeta)
}

// storedObjects is one kind of namespaced core/v1 object stored as JSON
// under root<namespace>/<name>, with Kubernetes' semantics: uid and
// creationTimestamp are the server's, resourceVersion the record's mod
// revision, generateName retried on a taken name, and updates a
// compare-and-swap on the revision read.
type storedObjects[T any, PT coreObject[T]] struct {
	st   store.Store
	gr   schema.GroupResource
	kind string
	// root is the records' common prefix, listPrefix the prefix of one
	// namespace's records ("" = every namespace), key one record's key.
	root       string
	listPrefix func(ns string) string
	key        func(ns, name string) string
	// prepare, when set, defaults the object and sets the status the server
	// gives it, before validation, on create and update.
	prepare func(PT)
	// validate checks an object to be stored; validateUpdate checks a
	// change to old beyond the object metadata.
	validate       func(PT) field.ErrorList
	validateUpdate func(obj, old PT) field.ErrorList
	// reserved, when set, reports names that exist elsewhere: creating one
	// is AlreadyExists.
	reserved func(ns, name string) bool
}

func (b storedObjects[T, PT]) gk() schema.GroupKind { return schema.GroupKind{Kind: b.kind} }

func (b storedObjects[T, PT]) setKind(o PT) {
	o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: b.kind})
}

// decode reads a record under root.
func (b storedObjects[T, PT]) decode(kv store.KV) (PT, error) {
	o := PT(new(T))
	if err := json.Unmarshal(kv.Value, o); err != nil {
		return nil, fmt.Errorf("stored %s %s is not a %s: %v", b.kind, strings.TrimPrefix(kv.Key, b.root), b.kind, err)
	}
	b.setKind(o)
	objectMeta[T](o).ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return o, nil
}

func (b storedObjects[T, PT]) get(ctx context.Context, ns, name string) (PT, error) {
	kv, err := b.st.Get(ctx, b.key(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, apierrors.NewNotFound(b.gr, name)
	}
	if err != nil {
		return nil, err
	}
	return b.decode(kv)
}

// items returns the objects of ns ("" = every namespace) sorted by
// namespace and name, and the revision they were read at.
func (b storedObjects[T, PT]) items(ctx context.Context, ns string) (int64, []T, error) {
	kvs, rev, err := b.st.List(ctx, b.listPrefix(ns))
	if err != nil {
		return 0, nil, err
	}
	items := []T{}
	for _, kv := range kvs {
		o, err := b.decode(kv)
		if err != nil {
			return 0, nil, err
		}
		items = append(items, *o)
	}
	sortObjects[T, PT](items)
	return rev, items, nil
}

// sortObjects sorts items by namespace and name.
func sortObjects[T any, PT coreObject[T]](items []T) {
	sort.Slice(items, func(i, j int) bool {
		a, b := objectMeta[T, PT](&items[i]), objectMeta[T, PT](&items[j])
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// put stores o with the condition rev (0 = create only) and answers it
// with its new resourceVersion.
func (b storedObjects[T, PT]) put(ctx context.Context, o PT, rev int64) (PT, error) {
	rec := o.DeepCopyObject().(PT)
	rec.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	objectMeta[T](rec).ResourceVersion = ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	m := objectMeta[T](o)
	at, err := b.st.Put(ctx, b.key(m.Namespace, m.Name), body, store.IfRevision(rev))
	if err != nil {
		return nil, err
	}
	out := o.DeepCopyObject().(PT)
	b.setKind(out)
	objectMeta[T](out).ResourceVersion = strconv.FormatInt(at, 10)
	return out, nil
}

// create stores a new object, or with dry only validates it and answers
// what would be stored. Errors: Kubernetes AlreadyExists, Invalid.
func (b storedObjects[T, PT]) create(ctx context.Context, in PT, dry bool) (PT, error) {
	generate := objectMeta[T](in).Name == "" && objectMeta[T](in).GenerateName != ""
	for attempt := 0; ; attempt++ {
		o := in.DeepCopyObject().(PT)
		m := objectMeta[T](o)
		if generate {
			m.Name = generatedName(m.GenerateName)
		}
		m.UID = types.UID(kilnmeta.NewUID())
		m.CreationTimestamp = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		m.ResourceVersion, m.Generation, m.DeletionTimestamp, m.DeletionGracePeriodSeconds = "", 0, nil, nil
		if b.prepare != nil {
			b.prepare(o)
		}
		if errs := b.validate(o); len(errs) > 0 {
			return nil, apierrors.NewInvalid(b.gk(), m.Name, errs)
		}
		if b.reserved != nil && b.reserved(m.Namespace, m.Name) {
			return nil, apierrors.NewAlreadyExists(b.gr, m.Name)
		}
		if dry {
			if _, err := b.get(ctx, m.Namespace, m.Name); err == nil {
				return nil, apierrors.NewAlreadyExists(b.gr, m.Name)
			}
			b.setKind(o)
			return o, nil
		}
		out, err := b.put(ctx, o, 0)
		if errdefs.IsAlreadyExists(err) || errdefs.IsConflict(err) {
			if generate && attempt < generateNameRetries {
				continue
			}
			return nil, apierrors.NewAlreadyExists(b.gr, m.Name)
		}
		return out, err
	}
}

// update replaces the object (with dry, only validates it); a set
// resourceVersion is a compare-and-swap. Errors: Kubernetes NotFound,
// Conflict, Invalid.
func (b storedObjects[T, PT]) update(ctx context.Context, in PT, dry bool) (PT, error) {
	inMeta := objectMeta[T](in)
	if err := checkResourceVersion(inMeta.ResourceVersion); err != nil {
		return nil, err
	}
	cur, err := b.get(ctx, inMeta.Namespace, inMeta.Name)
	if err != nil {
		return nil, err
	}
	curMeta := objectMeta[T](cur)
	if inMeta.ResourceVersion != "" && inMeta.ResourceVersion != curMeta.ResourceVersion {
		return nil, apierrors.NewConflict(b.gr, inMeta.Name, errModified)
	}
	o := in.DeepCopyObject().(PT)
	m := objectMeta[T](o)
	if m.UID == "" {
		m.UID = curMeta.UID
	}
	m.CreationTimestamp, m.ResourceVersion = curMeta.CreationTimestamp, curMeta.ResourceVersion
	if b.prepare != nil {
		b.prepare(o)
	}
	errs := apivalidation.ValidateObjectMetaUpdate(m, curMeta, field.NewPath("metadata"))
	errs = append(errs, b.validateUpdate(o, cur)...)
	errs = append(errs, b.validate(o)...)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(b.gk(), m.Name, errs)
	}
	if dry {
		b.setKind(o)
		return o, nil
	}
	out, err := b.put(ctx, o, mustRev(curMeta.ResourceVersion))
	switch {
	case errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err):
		return nil, apierrors.NewConflict(b.gr, m.Name, errModified)
	case errdefs.IsNotFound(err):
		return nil, apierrors.NewNotFound(b.gr, m.Name)
	}
	return out, err
}

// delete removes ns/name. Errors: a Kubernetes NotFound.
func (b storedObjects[T, PT]) delete(ctx context.Context, ns, name string) error {
	err := b.st.Delete(ctx, b.key(ns, name))
	if errdefs.IsNotFound(err) {
		return apierrors.NewNotFound(b.gr, name)
	}
	return err
}

// source watches the records of ns ("" = every namespace).
func (b storedObjects[T, PT]) source() storeSource {
	return storeSource{st: b.st,
		prefix: func(ns string) (string, bool) { return b.listPrefix(ns), true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			o, err := b.decode(kv)
			if err != nil {
				return watchItem{}, false, err
			}
			return coreItem(o, objectMeta[T](o), fields.Set{}), true, nil
		},
	}
}

// objectBackend is where the handlers of one kind read and write single
// objects: a storedObjects, or one that serves some names from elsewhere.
type objectBackend[PT any] interface {
	// get returns ns/name. Errors: a Kubernetes NotFound.
	get(ctx context.Context, ns, name string) (PT, error)
	// create stores a new object, or with dry only validates it and
	// answers what would be stored. Errors: Kubernetes AlreadyExists,
	// Invalid.
	create(ctx context.Context, o PT, dry bool) (PT, error)
	// update replaces ns/name (with dry, only validates); a set
	// resourceVersion is a compare-and-swap. Errors: Kubernetes NotFound,
	// Conflict, Invalid.
	update(ctx context.Context, o PT, dry bool) (PT, error)
	// delete removes ns/name. Errors: a Kubernetes NotFound.
	delete(ctx context.Context, ns, name string) error
}

// objectHandlers serve /api/v1/[namespaces/{ns}/]<resource> for one kind.
type objectHandlers[T any, PT coreObject[T]] struct {
	s        *server
	resource string
	gr       schema.GroupResource
	kind     string
	b        objectBackend[PT]
	// all lists what get and list show of ns ("" = every namespace), sorted,
	// with the revision read at; newList makes the list object answered.
	all     func(ctx context.Context, ns string) (int64, []T, error)
	newList func(rev int64, items []T) runtime.Object
	// stored is what deletecollection deletes from.
	stored storedObjects[T, PT]
	// watchSource is what a watch of ns follows.
	watchSource func(ns string) watchSource
}

// register serves the collection and object paths of h's resource.
func (h *objectHandlers[T, PT]) register(mux *http.ServeMux) {
	s := h.s
	ns := CorePath + "/namespaces/{ns}/" + h.resource
	mux.Handle("GET "+CorePath+"/"+h.resource, s.auth(h.list))
	mux.Handle("GET "+ns, s.auth(h.list))
	mux.Handle("POST "+ns, s.auth(h.create))
	mux.Handle("DELETE "+ns, s.auth(h.deleteCollection))
	mux.Handle("GET "+ns+"/{name}", s.auth(h.get))
	mux.Handle("PUT "+ns+"/{name}", s.auth(h.update))
	mux.Handle("PATCH "+ns+"/{name}", s.auth(h.patch))
	mux.Handle("DELETE "+ns+"/{name}", s.auth(h.delete))
}

func (h *objectHandlers[T, PT]) watch(w http.ResponseWriter, r *http.Request) {
	h.s.serveCoreWatch(w, r, h.resource, h.watchSource(r.PathValue("ns")))
}

func (h *objectHandlers[T, PT]) get(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.watch(w, r)
		return
	}
	o, err := h.b.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		h.s.coreFail(w, r, err, h.gr, r.PathValue("name"))
		return
	}
	writeCore(w, r, http.StatusOK, o)
}

// selectedBy is the request's label and field selectors as a test of one
// object.
func selectedBy[T any, PT coreObject[T]](r *http.Request) (func(T) bool, error) {
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace")
	}
	if err != nil {
		return nil, err
	}
	return func(o T) bool {
		m := objectMeta[T, PT](&o)
		return ls.Matches(labels.Set(m.Labels)) && fs.Matches(fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace})
	}, nil
}

func (h *objectHandlers[T, PT]) list(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.watch(w, r)
		return
	}
	fail := func(err error) { h.s.coreFail(w, r, err, h.gr, "") }
	match, err := selectedBy[T, PT](r)
	if err != nil {
		fail(err)
		return
	}
	rev, items, err := h.all(r.Context(), r.PathValue("ns"))
	if err != nil {
		fail(err)
		return
	}
	shown := items[:0]
	for _, o := range items {
		if match(o) {
			shown = append(shown, o)
		}
	}
	writeCore(w, r, http.StatusOK, h.newList(rev, shown))
}

// read decodes a body of h's kind and checks it against the URL.
func (h *objectHandlers[T, PT]) read(r *http.Request, name string) (PT, error) {
	o := PT(new(T))
	if err := readCoreObject(r, o, h.resource); err != nil {
		return nil, err
	}
	if err := checkTarget(objectMeta[T](o), r.PathValue("ns"), name); err != nil {
		return nil, err
	}
	return o, nil
}

func (h *objectHandlers[T, PT]) create(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	var o, out PT
	if err == nil {
		o, err = h.read(r, "")
	}
	if err == nil {
		out, err = h.b.create(r.Context(), o, dry)
	}
	if err != nil {
		name := ""
		if o != nil {
			name = objectMeta[T](o).Name
		}
		h.s.coreFail(w, r, err, h.gr, name)
		return
	}
	if !dry {
		m := objectMeta[T](out)
		h.s.log.Info("created", "kind", h.kind, "namespace", m.Namespace, "name", m.Name, "resource_version", m.ResourceVersion)
	}
	writeCore(w, r, http.StatusCreated, out)
}

// write updates o, or with dry only validates it and answers what would be
// stored.
func (h *objectHandlers[T, PT]) write(ctx context.Context, o PT, dry bool) (PT, error) {
	out, err := h.b.update(ctx, o, dry)
	if err == nil && !dry {
		m := objectMeta[T](o)
		h.s.log.Info("updated", "kind", h.kind, "namespace", m.Namespace, "name", m.Name, "resource_version", objectMeta[T](out).ResourceVersion)
	}
	return out, err
}

func (h *objectHandlers[T, PT]) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	dry, err := dryRun(r)
	var o PT
	if err == nil {
		o, err = h.read(r, name)
	}
	if err == nil {
		o, err = h.write(r.Context(), o, dry)
	}
	if err != nil {
		h.s.coreFail(w, r, err, h.gr, name)
		return
	}
	writeCore(w, r, http.StatusOK, o)
}

// patch applies a strategic merge, JSON merge or JSON patch to the current
// object and writes the result with a compare-and-swap on the revision it
// read, replaying on a concurrent change unless the patch itself carries a
// resourceVersion (a precondition, as in Kubernetes).
func (h *objectHandlers[T, PT]) patch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	fail := func(err error) { h.s.coreFail(w, r, err, h.gr, name) }
	dry, pt, body, err := readDryRunPatch(r)
	if err != nil {
		fail(err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := h.b.get(ctx, ns, name)
		if err != nil {
			fail(err)
			return
		}
		o, err := patchCore[T](pt, cur, body, h.kind)
		if err == nil {
			err = checkTarget(objectMeta[T, PT](o), ns, name)
		}
		if err != nil {
			fail(err)
			return
		}
		pinned := objectMeta[T, PT](o).ResourceVersion != objectMeta[T](cur).ResourceVersion
		out, err := h.write(ctx, o, dry)
		if apierrors.IsConflict(err) && !pinned && attempt < patchRetries {
			continue
		}
		if err != nil {
			fail(err)
			return
		}
		writeCore(w, r, http.StatusOK, out)
		return
	}
}

func (h *objectHandlers[T, PT]) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.b.delete(r.Context(), ns, name); err != nil {
		h.s.coreFail(w, r, err, h.gr, name)
		return
	}
	h.s.log.Info("deleted", "kind", h.kind, "namespace", ns, "name", name)
	writeCore(w, r, http.StatusOK, deleted(h.gr, name))
}

// deleteCollection deletes the stored objects of the namespace that the
// label and field selectors match and answers them as they were, as
// Kubernetes does.
func (h *objectHandlers[T, PT]) deleteCollection(w http.ResponseWriter, r *http.Request) {
	ctx, ns := r.Context(), r.PathValue("ns")
	fail := func(err error) { h.s.coreFail(w, r, err, h.gr, "") }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	match, err := selectedBy[T, PT](r)
	if err != nil {
		fail(err)
		return
	}
	rev, items, err := h.stored.items(ctx, ns)
	if err != nil {
		fail(err)
		return
	}
	gone := items[:0]
	for _, o := range items {
		if !match(o) {
			continue
		}
		m := objectMeta[T, PT](&o)
		if !dry {
			err := h.stored.delete(ctx, ns, m.Name)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				fail(err)
				return
			}
			h.s.log.Info("deleted", "kind", h.kind, "namespace", ns, "name", m.Name)
		}
		gone = append(gone, o)
	}
	writeCore(w, r, http.StatusOK, h.newList(rev, gone))
}
