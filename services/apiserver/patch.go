package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// maxJSONPatchOperations is kube-apiserver's bound on one JSON patch.
const maxJSONPatchOperations = 10000

// customPatchTypes are the media types a kube-apiserver accepts in a PATCH of
// a custom resource, in the order its 415 message lists them. Strategic
// merge patch needs Go struct tags that custom kinds do not have.
var customPatchTypes = []string{
	string(types.JSONPatchType),
	string(types.MergePatchType),
	string(types.ApplyYAMLPatchType),
}

// patchObject applies a PATCH body to the live object's JSON (live == nil: the object does not exist; only
// server-side apply may then create it) and returns the new object's JSON, with metadata.managedFields
// updated for the manager. Errors are apierrors-style (k8s.io/apimachinery/pkg/api/errors) Status errors:
// 415 for an unsupported patch type, 422/400 for a bad patch, 409 Conflict for apply conflicts.
//
// What the patch may not change is taken from live: status (served by the
// status subresource), metadata.generation, creationTimestamp,
// deletionTimestamp and deletionGracePeriodSeconds. A patch that changes
// metadata.uid is refused (422, immutable); one that sets another
// metadata.resourceVersion than live's is a precondition that failed (409),
// as kubectl's client-side to server-side apply upgrade relies on. A patch
// that renames the object or moves it to another namespace is refused (400).
// When apply creates the object, server-set metadata and status are dropped:
// the caller fills them as for any create, and checks the name against the URL.
func patchObject(a apiResource, live []byte, contentType string, patch []byte, manager string, force bool) ([]byte, error) {
	patchType, err := customPatchType(contentType)
	if err != nil {
		return nil, err
	}
	var liveObj *unstructured.Unstructured
	if live != nil {
		if liveObj, err = decodeStored(a, live); err != nil {
			return nil, err
		}
	}

	var out runtime.Object
	if patchType == types.ApplyYAMLPatchType {
		if manager == "" {
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "",
				field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")})
		}
		// Transcoded first, as kube-apiserver does, so a YAML error reads the same.
		js, err := utilyaml.ToJSON(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error encoding patch: %v", err))
		}
		applied := &unstructured.Unstructured{Object: map[string]any{}}
		if err := utiljson.Unmarshal(js, &applied.Object); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		base := liveObj
		if base == nil {
			base = newEmptyObject(a)
		}
		fm, err := newFieldManager(a, base, applied)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if out, err = fm.Apply(base, applied, manager, force); err != nil {
			return nil, err
		}
	} else {
		if !json.Valid(patch) {
			return nil, apierrors.NewBadRequest("invalid JSON patch")
		}
		if liveObj == nil {
			return nil, apierrors.NewNotFound(a.GroupResource(), "")
		}
		doc, err := liveObj.MarshalJSON()
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		patched, err := applyJSONPatch(patchType, doc, patch)
		if err != nil {
			return nil, err
		}
		newObj, err := decodeUnstructured(patched)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("decode patched object: %v", err))
		}
		if err := checkTypeMeta(a, newObj); err != nil {
			return nil, err
		}
		fm, err := newFieldManager(a, liveObj, newObj)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		out = fm.UpdateNoErrors(liveObj, newObj, manager)
	}

	result, ok := out.(*unstructured.Unstructured)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager returned %T", out))
	}
	if err := keepServerFields(a, liveObj, result); err != nil {
		return nil, err
	}
	// The field manager hands back the hub version; the object is served
	// and stored in the resource's own.
	result.SetGroupVersionKind(resourceGVK(a))
	return result.MarshalJSON()
}

// updateManagedFields records a non-apply write (operation "Update") by manager: obj is the new object's
// JSON, live the stored one (nil on create). It returns obj with metadata.managedFields updated.
//
// operation is "Update" for create, update and non-apply patches, the only
// kind of write besides apply that Kubernetes records; anything else is a
// caller's mistake and answered with an internal error. Call it before
// defaults are filled, as kube-apiserver runs its field manager before
// mutating admission: defaults are then owned by no manager.
func updateManagedFields(a apiResource, live, obj []byte, manager, operation string) ([]byte, error) {
	if operation != string(metav1.ManagedFieldsOperationUpdate) {
		return nil, apierrors.NewInternalError(fmt.Errorf("managed fields: operation %q is not recorded by an update", operation))
	}
	liveObj := newEmptyObject(a)
	var err error
	if live != nil {
		if liveObj, err = decodeStored(a, live); err != nil {
			return nil, err
		}
	}
	newObj, err := decodeUnstructured(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decode %s: %v", a.Kind, err))
	}
	fm, err := newFieldManager(a, liveObj, newObj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out, ok := fm.UpdateNoErrors(liveObj, newObj, manager).(*unstructured.Unstructured)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager returned another type than an object"))
	}
	out.SetGroupVersionKind(resourceGVK(a))
	return out.MarshalJSON()
}

// fieldManagerName is the manager a write is recorded under: the request's
// fieldManager, or else the client's name from its User-Agent ("kubectl" for
// "kubectl/v1.32.0 (linux/amd64) ..."), at most 128 bytes, as
// kube-apiserver names it.
func fieldManagerName(fieldManager, userAgent string) string {
	if fieldManager != "" {
		return fieldManager
	}
	name, _, _ := strings.Cut(userAgent, "/")
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}

// customPatchType checks a PATCH Content-Type (parameters such as charset
// ignored) against what a custom resource accepts.
func customPatchType(contentType string) (types.PatchType, error) {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	for _, t := range customPatchTypes {
		if mediaType == t {
			return types.PatchType(t), nil
		}
	}
	return "", &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: " + strings.Join(customPatchTypes, ", "),
	}}
}

// applyJSONPatch applies an RFC 6902 JSON patch or an RFC 7386 merge patch,
// with kube-apiserver's errors: 400 for a patch that does not decode, 422 for
// one that does not apply to the object.
func applyJSONPatch(patchType types.PatchType, doc, patch []byte) ([]byte, error) {
	switch patchType {
	case types.JSONPatchType:
		var ops []jsonPatchOp
		if _, err := kjson.UnmarshalStrict(patch, &ops); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if len(p) > maxJSONPatchOperations {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf(
				"The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(p)))
		}
		out, err := p.Apply(doc)
		if err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	case types.MergePatchType:
		obj := map[string]any{}
		if _, err := kjson.UnmarshalStrict(patch, &obj); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		out, err := jsonpatch.MergePatch(doc, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return out, nil
	}
	return nil, apierrors.NewInternalError(fmt.Errorf("patch type %q is not a JSON patch", patchType))
}

// checkTypeMeta refuses a patched object whose apiVersion or kind is not
// the resource's, with kube-apiserver's words (it names the patched kind).
func checkTypeMeta(a apiResource, obj *unstructured.Unstructured) error {
	want := resourceGVK(a)
	var errs field.ErrorList
	if v := obj.GetAPIVersion(); v != want.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), v, "must be "+want.GroupVersion().String()))
	}
	if k := obj.GetKind(); k != want.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), k, "must be "+want.Kind))
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: a.Group, Kind: obj.GetKind()}, obj.GetName(), errs)
}

// jsonPatchOp is one RFC 6902 operation, for decoding a patch as
// kube-apiserver does before applying it.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from"`
	Value any    `json:"value"`
}

// keepServerFields makes what a write through the main resource may not
// change equal to live's (see patchObject).
func keepServerFields(a apiResource, live, out *unstructured.Unstructured) error {
	if live == nil {
		for _, f := range [][]string{
			{"status"}, {"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "generation"},
			{"metadata", "creationTimestamp"}, {"metadata", "deletionTimestamp"}, {"metadata", "deletionGracePeriodSeconds"},
		} {
			unstructured.RemoveNestedField(out.Object, f...)
		}
		return nil
	}
	gr := a.GroupResource()
	if out.GetName() != live.GetName() {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", out.GetName(), live.GetName()))
	}
	if out.GetNamespace() != live.GetNamespace() {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if uid := out.GetUID(); uid != "" && uid != live.GetUID() {
		return apierrors.NewInvalid(schema.GroupKind{Group: a.Group, Kind: a.Kind}, live.GetName(), field.ErrorList{
			field.Invalid(field.NewPath("metadata", "uid"), uid, "field is immutable")})
	}
	if rv := out.GetResourceVersion(); rv != "" && rv != live.GetResourceVersion() {
		return apierrors.NewConflict(gr, live.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	for _, f := range [][]string{
		{"status"}, {"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "generation"},
		{"metadata", "creationTimestamp"}, {"metadata", "deletionTimestamp"}, {"metadata", "deletionGracePeriodSeconds"},
	} {
		v, found, err := unstructured.NestedFieldCopy(live.Object, f...)
		if err != nil || !found {
			unstructured.RemoveNestedField(out.Object, f...)
			continue
		}
		if err := unstructured.SetNestedField(out.Object, v, f...); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
	return nil
}

// newFieldManager builds the field manager a kube-apiserver runs for a
// custom resource with a status subresource, for one write of objs: status
// is reset on writes to the main resource, so apply never takes ownership of
// it. Objects merge field by field and every list is atomic, as Knative's
// CRD schemas give (no list-type annotations): a changed container
// conflicts on .spec.template.spec.containers as a whole.
func newFieldManager(a apiResource, objs ...*unstructured.Unstructured) (*managedfields.FieldManager, error) {
	gv := schema.GroupVersion{Group: a.Group, Version: a.Version}
	var reset map[fieldpath.APIVersion]fieldpath.Filter
	for _, s := range a.Subresources {
		if s == "status" {
			reset = map[fieldpath.APIVersion]fieldpath.Filter{
				fieldpath.APIVersion(gv.String()): fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("status"))),
			}
		}
	}
	return managedfields.NewDefaultCRDFieldManager(
		newObjectTypeConverter(objs...),
		unstructuredConverter{},
		noDefaults{},
		unstructuredCreater{},
		gv.WithKind(a.Kind),
		schema.GroupVersion{Group: a.Group, Version: runtime.APIVersionInternal},
		"",
		reset,
	)
}

func resourceGVK(a apiResource) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: a.Group, Version: a.Version, Kind: a.Kind}
}

// newEmptyObject is the object a create starts from: only apiVersion and kind.
func newEmptyObject(a apiResource) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(resourceGVK(a))
	return u
}

// decodeStored reads the stored object in the version the request names:
// the served versions of a kind share one schema (DomainMapping's v1alpha1 and
// v1beta1), so only apiVersion changes, as with a CRD's conversion None.
func decodeStored(a apiResource, b []byte) (*unstructured.Unstructured, error) {
	u, err := decodeUnstructured(b)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("decode stored %s: %w", a.Kind, err))
	}
	u.SetGroupVersionKind(resourceGVK(a))
	return u, nil
}

// decodeUnstructured reads an object's JSON with integers kept as int64, as
// Kubernetes' unstructured decoding does.
func decodeUnstructured(b []byte) (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if err := utiljson.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// unstructuredConverter converts between versions of one group by setting
// apiVersion only: kiln's kinds have one schema for all their served versions
// (DomainMapping v1alpha1 and v1beta1), as Knative's CRDs with conversion None.
type unstructuredConverter struct{}

func (unstructuredConverter) Convert(in, out, context any) error {
	return fmt.Errorf("unstructured conversion from %T to %T is not supported", in, out)
}

func (unstructuredConverter) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("convert %T: not an unstructured object", in)
	}
	gvk, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("convert %s to %v: no such version", u.GroupVersionKind(), target)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(gvk)
	return out, nil
}

func (unstructuredConverter) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// noDefaults leaves defaulting to the write path (Knative's webhook defaults
// run after the field manager, as admission does).
type noDefaults struct{}

func (noDefaults) Default(runtime.Object) {}

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}
