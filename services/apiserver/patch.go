package apiserver

import (
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// patchTypes are the PATCH bodies this version understands.
var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json"}

// patchObject applies patch (of contentType) to live, the stored object's
// JSON, and returns the patched object's JSON. live is nil for an apply
// that creates. Errors are Status-carrying: 415 for a patch type it does
// not take, 422 for a patch that does not apply.
func patchObject(a apiResource, live []byte, contentType string, patch []byte, manager string, force bool) ([]byte, error) {
	switch contentType {
	case "application/merge-patch+json":
		out, err := jsonpatch.MergePatch(live, patch)
		if err != nil {
			return nil, k8serrors.NewBadRequest(err.Error())
		}
		return out, nil
	case "application/json-patch+json":
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, k8serrors.NewBadRequest(err.Error())
		}
		out, err := p.Apply(live)
		if err != nil {
			return nil, k8serrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{Group: a.Group, Resource: a.Resource}, "", err.Error(), 0, false)
		}
		return out, nil
	}
	return nil, &k8serrors.StatusError{ErrStatus: Status{Status: k8smeta.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  k8smeta.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s", strings.Join(patchTypes, ", "))}}
}

// updateManagedFields records manager's operation ("Update", "Apply") in
// obj's metadata.managedFields, given live (nil on create). This version
// keeps obj as it is.
func updateManagedFields(a apiResource, live, obj []byte, manager, operation string) ([]byte, error) {
	return obj, nil
}
