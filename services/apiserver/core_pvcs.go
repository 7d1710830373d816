package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/errdefs"
	kilnmeta "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/store"
)

var (
	pvcsGR = schema.GroupResource{Resource: "persistentvolumeclaims"}
	pvcGK  = schema.GroupKind{Kind: "PersistentVolumeClaim"}
)

// pvcs are PersistentVolumeClaims, stored as core/v1 JSON under
// persistentvolumeclaims/<namespace>/<name>. kiln binds every claim at once
// to its node directory VOLUME-ROOT/<namespace>/<name>, so the server sets
// the status: phase Bound, the requested access modes, and the requested
// storage as capacity (a directory has no size of its own).
type pvcs struct{ st store.Store }

// decodePVC reads a record under persistentvolumeclaims/.
func decodePVC(kv store.KV) (*corev1.PersistentVolumeClaim, error) {
	c := &corev1.PersistentVolumeClaim{}
	if err := json.Unmarshal(kv.Value, c); err != nil {
		return nil, fmt.Errorf("stored PersistentVolumeClaim %s is not a PersistentVolumeClaim: %v",
			strings.TrimPrefix(kv.Key, store.PersistentVolumeClaimsPrefix), err)
	}
	c.APIVersion, c.Kind = "v1", "PersistentVolumeClaim"
	c.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return c, nil
}

func (b pvcs) get(ctx context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	kv, err := b.st.Get(ctx, store.PersistentVolumeClaimKey(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, apierrors.NewNotFound(pvcsGR, name)
	}
	if err != nil {
		return nil, err
	}
	return decodePVC(kv)
}

func (b pvcs) list(ctx context.Context, ns string) (*corev1.PersistentVolumeClaimList, error) {
	kvs, rev, err := b.st.List(ctx, store.PersistentVolumeClaimListPrefix(ns))
	if err != nil {
		return nil, err
	}
	out := &corev1.PersistentVolumeClaimList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaimList"},
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: []corev1.PersistentVolumeClaim{}}
	for _, kv := range kvs {
		c, err := decodePVC(kv)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *c)
	}
	sort.Slice(out.Items, func(i, j int) bool {
		a, b := out.Items[i], out.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

// put stores c with the condition rev (0 = create only) and answers it
// with its new resourceVersion.
func (b pvcs) put(ctx context.Context, c *corev1.PersistentVolumeClaim, rev int64) (*corev1.PersistentVolumeClaim, error) {
	rec := c.DeepCopy()
	rec.TypeMeta, rec.ResourceVersion = metav1.TypeMeta{}, ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	at, err := b.st.Put(ctx, store.PersistentVolumeClaimKey(c.Namespace, c.Name), body, store.IfRevision(rev))
	if err != nil {
		return nil, err
	}
	out := c.DeepCopy()
	out.APIVersion, out.Kind = "v1", "PersistentVolumeClaim"
	out.ResourceVersion = strconv.FormatInt(at, 10)
	return out, nil
}

// bind defaults the spec as Kubernetes does and sets the status kiln's
// binding gives the claim.
func bind(c *corev1.PersistentVolumeClaim) {
	if c.Spec.VolumeMode == nil {
		fs := corev1.PersistentVolumeFilesystem
		c.Spec.VolumeMode = &fs
	}
	c.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: c.Spec.AccessModes}
	if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: q}
	}
}

func (b pvcs) create(ctx context.Context, in *corev1.PersistentVolumeClaim, dry bool) (*corev1.PersistentVolumeClaim, error) {
	generate := in.Name == "" && in.GenerateName != ""
	for attempt := 0; ; attempt++ {
		c := in.DeepCopy()
		if generate {
			c.Name = generatedName(c.GenerateName)
		}
		c.UID = types.UID(kilnmeta.NewUID())
		c.CreationTimestamp = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		c.ResourceVersion, c.Generation, c.DeletionTimestamp, c.DeletionGracePeriodSeconds = "", 0, nil, nil
		bind(c)
		if errs := validatePVC(c); len(errs) > 0 {
			return nil, apierrors.NewInvalid(pvcGK, c.Name, errs)
		}
		if dry {
			if _, err := b.get(ctx, c.Namespace, c.Name); err == nil {
				return nil, apierrors.NewAlreadyExists(pvcsGR, c.Name)
			}
			c.APIVersion, c.Kind = "v1", "PersistentVolumeClaim"
			return c, nil
		}
		out, err := b.put(ctx, c, 0)
		if errdefs.IsAlreadyExists(err) || errdefs.IsConflict(err) {
			if generate && attempt < generateNameRetries {
				continue
			}
			return nil, apierrors.NewAlreadyExists(pvcsGR, c.Name)
		}
		return out, err
	}
}

func (b pvcs) update(ctx context.Context, in *corev1.PersistentVolumeClaim, dry bool) (*corev1.PersistentVolumeClaim, error) {
	if err := checkResourceVersion(in.ResourceVersion); err != nil {
		return nil, err
	}
	cur, err := b.get(ctx, in.Namespace, in.Name)
	if err != nil {
		return nil, err
	}
	if in.ResourceVersion != "" && in.ResourceVersion != cur.ResourceVersion {
		return nil, apierrors.NewConflict(pvcsGR, in.Name, errModified)
	}
	c := in.DeepCopy()
	if c.UID == "" {
		c.UID = cur.UID
	}
	c.CreationTimestamp, c.ResourceVersion = cur.CreationTimestamp, cur.ResourceVersion
	bind(c)
	errs := apivalidation.ValidateObjectMetaUpdate(&c.ObjectMeta, &cur.ObjectMeta, field.NewPath("metadata"))
	errs = append(errs, validatePVCUpdate(c, cur)...)
	errs = append(errs, validatePVC(c)...)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(pvcGK, c.Name, errs)
	}
	if dry {
		c.APIVersion, c.Kind = "v1", "PersistentVolumeClaim"
		return c, nil
	}
	out, err := b.put(ctx, c, mustRev(cur.ResourceVersion))
	switch {
	case errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err):
		return nil, apierrors.NewConflict(pvcsGR, c.Name, errModified)
	case errdefs.IsNotFound(err):
		return nil, apierrors.NewNotFound(pvcsGR, c.Name)
	}
	return out, err
}

func (b pvcs) delete(ctx context.Context, ns, name string) error {
	err := b.st.Delete(ctx, store.PersistentVolumeClaimKey(ns, name))
	if errdefs.IsNotFound(err) {
		return apierrors.NewNotFound(pvcsGR, name)
	}
	return err
}

var (
	pvcAccessModes = sets.New(corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod)
	pvcVolumeModes = sets.New(corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)
)

// validatePVC is the essentials of Kubernetes' ValidatePersistentVolumeClaim:
// object metadata (a DNS-subdomain name), at least one supported access
// mode (ReadWriteOncePod alone), a supported volumeMode, and a positive
// storage request. Field paths and messages are Kubernetes'.
func validatePVC(c *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&c.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	spec := field.NewPath("spec")
	modes := spec.Child("accessModes")
	if len(c.Spec.AccessModes) == 0 {
		errs = append(errs, field.Required(modes, "at least 1 access mode is required"))
	}
	for _, m := range c.Spec.AccessModes {
		if !pvcAccessModes.Has(m) {
			errs = append(errs, field.NotSupported(modes, m, sets.List(pvcAccessModes)))
		}
	}
	if given := sets.New(c.Spec.AccessModes...); given.Has(corev1.ReadWriteOncePod) &&
		given.HasAny(corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany) {
		errs = append(errs, field.Forbidden(modes, "may not use ReadWriteOncePod with other access modes"))
	}
	if c.Spec.VolumeMode != nil && !pvcVolumeModes.Has(*c.Spec.VolumeMode) {
		errs = append(errs, field.NotSupported(spec.Child("volumeMode"), *c.Spec.VolumeMode, sets.List(pvcVolumeModes)))
	}
	storage := spec.Child("resources").Key(string(corev1.ResourceStorage))
	q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]
	switch {
	case !ok:
		errs = append(errs, field.Required(storage, ""))
	case q.Sign() <= 0:
		errs = append(errs, field.Invalid(storage, q.String(), "must be greater than zero"))
	}
	return errs
}

// validatePVCUpdate is Kubernetes' rule for a bound claim: the spec is
// immutable except resources.requests, and the storage request may not
// fall below status.capacity (which kiln keeps at the request).
func validatePVCUpdate(c, old *corev1.PersistentVolumeClaim) field.ErrorList {
	var errs field.ErrorList
	newSpec, oldSpec := c.Spec.DeepCopy(), old.Spec.DeepCopy()
	newSpec.Resources.Requests, oldSpec.Resources.Requests = nil, nil
	if !reflect.DeepEqual(newSpec, oldSpec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"),
			"spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
	}
	q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]
	was := old.Spec.Resources.Requests[corev1.ResourceStorage]
	if ok && q.Cmp(was) < 0 {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	return errs
}

// pvcSource watches persistentvolumeclaims/.
func pvcSource(st store.Store) storeSource {
	return storeSource{st: st,
		prefix: func(ns string) (string, bool) { return store.PersistentVolumeClaimListPrefix(ns), true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			c, err := decodePVC(kv)
			if err != nil {
				return watchItem{}, false, err
			}
			return coreItem(c, &c.ObjectMeta, fields.Set{}), true, nil
		},
	}
}

// registerPersistentVolumeClaims serves
// /api/v1/[namespaces/{ns}/]persistentvolumeclaims.
func (s *server) registerPersistentVolumeClaims(mux *http.ServeMux) {
	h := &pvcHandlers{s: s, b: pvcs{st: s.st}}
	ns := CorePath + "/namespaces/{ns}/persistentvolumeclaims"
	mux.Handle("GET "+CorePath+"/persistentvolumeclaims", s.auth(h.list))
	mux.Handle("GET "+ns, s.auth(h.list))
	mux.Handle("POST "+ns, s.auth(h.create))
	mux.Handle("DELETE "+ns, s.auth(h.deleteCollection))
	mux.Handle("GET "+ns+"/{name}", s.auth(h.get))
	mux.Handle("PUT "+ns+"/{name}", s.auth(h.update))
	mux.Handle("PATCH "+ns+"/{name}", s.auth(h.patch))
	mux.Handle("DELETE "+ns+"/{name}", s.auth(h.delete))
}

type pvcHandlers struct {
	s *server
	b pvcs
}

func (h *pvcHandlers) watch(w http.ResponseWriter, r *http.Request) {
	h.s.serveCoreWatch(w, r, "persistentvolumeclaims", pvcSource(h.s.st))
}

func (h *pvcHandlers) get(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.watch(w, r)
		return
	}
	c, err := h.b.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		h.s.coreFail(w, r, err, pvcsGR, r.PathValue("name"))
		return
	}
	writeCore(w, r, http.StatusOK, c)
}

// selected lists the claims of the request's namespace that its label and
// field selectors match.
func (h *pvcHandlers) selected(r *http.Request) (*corev1.PersistentVolumeClaimList, error) {
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace")
	}
	if err != nil {
		return nil, err
	}
	list, err := h.b.list(r.Context(), r.PathValue("ns"))
	if err != nil {
		return nil, err
	}
	items := list.Items[:0]
	for _, c := range list.Items {
		if ls.Matches(labels.Set(c.Labels)) && fs.Matches(fields.Set{"metadata.name": c.Name, "metadata.namespace": c.Namespace}) {
			items = append(items, c)
		}
	}
	list.Items = items
	return list, nil
}

func (h *pvcHandlers) list(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.watch(w, r)
		return
	}
	list, err := h.selected(r)
	if err != nil {
		h.s.coreFail(w, r, err, pvcsGR, "")
		return
	}
	writeCore(w, r, http.StatusOK, list)
}

// readPVC decodes a PersistentVolumeClaim body and checks it against the URL.
func readPVC(r *http.Request, name string) (*corev1.PersistentVolumeClaim, error) {
	c := &corev1.PersistentVolumeClaim{}
	if err := readCoreObject(r, c, "persistentvolumeclaims"); err != nil {
		return nil, err
	}
	if err := checkTarget(&c.ObjectMeta, r.PathValue("ns"), name); err != nil {
		return nil, err
	}
	return c, nil
}

func (h *pvcHandlers) create(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	var c, out *corev1.PersistentVolumeClaim
	if err == nil {
		c, err = readPVC(r, "")
	}
	if err == nil {
		out, err = h.b.create(r.Context(), c, dry)
	}
	if err != nil {
		name := ""
		if c != nil {
			name = c.Name
		}
		h.s.coreFail(w, r, err, pvcsGR, name)
		return
	}
	if !dry {
		h.s.log.Info("created", "kind", "PersistentVolumeClaim", "namespace", out.Namespace, "name", out.Name, "resource_version", out.ResourceVersion)
	}
	writeCore(w, r, http.StatusCreated, out)
}

// write updates c, or with dry only validates it.
func (h *pvcHandlers) write(ctx context.Context, c *corev1.PersistentVolumeClaim, dry bool) (*corev1.PersistentVolumeClaim, error) {
	out, err := h.b.update(ctx, c, dry)
	if err == nil && !dry {
		h.s.log.Info("updated", "kind", "PersistentVolumeClaim", "namespace", c.Namespace, "name", c.Name, "resource_version", out.ResourceVersion)
	}
	return out, err
}

func (h *pvcHandlers) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	dry, err := dryRun(r)
	var c *corev1.PersistentVolumeClaim
	if err == nil {
		c, err = readPVC(r, name)
	}
	if err == nil {
		c, err = h.write(r.Context(), c, dry)
	}
	if err != nil {
		h.s.coreFail(w, r, err, pvcsGR, name)
		return
	}
	writeCore(w, r, http.StatusOK, c)
}

// patch applies a strategic merge, JSON merge or JSON patch to the current
// claim and writes it with a compare-and-swap on the revision it read,
// replaying on a concurrent change unless the patch pins a resourceVersion.
func (h *pvcHandlers) patch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	fail := func(err error) { h.s.coreFail(w, r, err, pvcsGR, name) }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	pt, body, err := readPatch(r)
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
		c, err := patchCore[corev1.PersistentVolumeClaim](pt, cur, body, "PersistentVolumeClaim")
		if err == nil {
			err = checkTarget(&c.ObjectMeta, ns, name)
		}
		if err != nil {
			fail(err)
			return
		}
		pinned := c.ResourceVersion != cur.ResourceVersion
		out, err := h.write(ctx, c, dry)
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

func (h *pvcHandlers) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.b.delete(r.Context(), ns, name); err != nil {
		h.s.coreFail(w, r, err, pvcsGR, name)
		return
	}
	h.s.log.Info("deleted", "kind", "PersistentVolumeClaim", "namespace", ns, "name", name)
	writeCore(w, r, http.StatusOK, deleted(pvcsGR, name))
}

// deleteCollection deletes the claims the selectors match and answers them
// as they were, as Kubernetes does.
func (h *pvcHandlers) deleteCollection(w http.ResponseWriter, r *http.Request) {
	ctx, ns := r.Context(), r.PathValue("ns")
	fail := func(err error) { h.s.coreFail(w, r, err, pvcsGR, "") }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	list, err := h.selected(r)
	if err != nil {
		fail(err)
		return
	}
	items := list.Items[:0]
	for _, c := range list.Items {
		if !dry {
			err := h.b.delete(ctx, ns, c.Name)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				fail(err)
				return
			}
			h.s.log.Info("deleted", "kind", "PersistentVolumeClaim", "namespace", ns, "name", c.Name)
		}
		items = append(items, c)
	}
	list.Items = items
	writeCore(w, r, http.StatusOK, list)
}

// pvcAccessModesCell is kubectl's ACCESS MODES cell: RWO,ROX,RWX,RWOP.
func pvcAccessModesCell(obj map[string]any) any {
	status, _ := obj["status"].(map[string]any)
	modes, _ := status["accessModes"].([]any)
	short := map[string]string{"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
	var out []string
	for _, want := range []string{"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"} {
		for _, m := range modes {
			if m == want {
				out = append(out, short[want])
				break
			}
		}
	}
	return strings.Join(out, ",")
}
