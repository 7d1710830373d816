package apiserver

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/internal/store"
)

var pvcsGR = schema.GroupResource{Resource: "persistentvolumeclaims"}

// pvcs are PersistentVolumeClaims, stored as core/v1 JSON under
// persistentvolumeclaims/<namespace>/<name>. kiln binds every claim at once
// to its node directory VOLUME-ROOT/<namespace>/<name>, so the server sets
// the status: phase Bound, the requested access modes, and the requested
// storage as capacity (a directory has no size of its own).
func pvcs(st store.Store) storedObjects[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim] {
	return storedObjects[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim]{
		st: st, gr: pvcsGR, kind: "PersistentVolumeClaim",
		root: store.PersistentVolumeClaimsPrefix, listPrefix: store.PersistentVolumeClaimListPrefix, key: store.PersistentVolumeClaimKey,
		prepare: bind, validate: validatePVC, validateUpdate: validatePVCUpdate,
	}
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

// registerPersistentVolumeClaims serves
// /api/v1/[namespaces/{ns}/]persistentvolumeclaims.
func (s *server) registerPersistentVolumeClaims(mux *http.ServeMux) {
	b := pvcs(s.st)
	h := &objectHandlers[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim]{
		s: s, resource: "persistentvolumeclaims", gr: pvcsGR, kind: "PersistentVolumeClaim", b: b, all: b.items,
		newList: func(rev int64, items []corev1.PersistentVolumeClaim) runtime.Object {
			return &corev1.PersistentVolumeClaimList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaimList"},
				ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: items}
		},
		stored:      b,
		watchSource: func(string) watchSource { return b.source() },
	}
	h.register(mux)
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
