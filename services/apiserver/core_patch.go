package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// corePatchTypes are the patch types the core/v1 kinds accept; kubectl
// sends strategic merge patches for them. Server-side apply is not served.
var corePatchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType)}

// readDryRunPatch reads a PATCH's dryRun option, its type and its body.
func readDryRunPatch(r *http.Request) (dry bool, pt types.PatchType, body []byte, err error) {
	if dry, err = dryRun(r); err != nil {
		return false, "", nil, err
	}
	pt, body, err = readPatch(r)
	return dry, pt, body, err
}

// readPatch reads a PATCH body and its type: 415 for a type not served, as
// a kube-apiserver answers.
func readPatch(r *http.Request) (types.PatchType, []byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	pt := types.PatchType(ct)
	switch pt {
	case types.StrategicMergePatchType, types.MergePatchType, types.JSONPatchType:
	default:
		return "", nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure,
			Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
			Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
				corePatchTypes[0], corePatchTypes[1], corePatchTypes[2])}}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return "", nil, apierrors.NewBadRequest(fmt.Sprintf("read body: %v", err))
	}
	if len(body) > maxBody {
		return "", nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("request body larger than %d bytes", maxBody))
	}
	return pt, body, nil
}

// applyCorePatch applies patch to the JSON document cur. dataStruct is the
// k8s.io/api type whose patch strategy a strategic merge patch follows.
func applyCorePatch(pt types.PatchType, cur, patch []byte, dataStruct any) ([]byte, error) {
	var out []byte
	var err error
	switch pt {
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(cur, patch, dataStruct)
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(cur, patch)
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			out, err = p.Apply(cur)
		}
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the patch could not be applied: %v", err))
	}
	return out, nil
}

// patchCore applies a patch of type pt to cur (a k8s.io/api object) and
// decodes the result into a new T: the part every core kind's PATCH shares.
// kind names T in the error for a result that is not one.
func patchCore[T any](pt types.PatchType, cur any, body []byte, kind string) (*T, error) {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	patched, err := applyCorePatch(pt, curJSON, body, new(T))
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the patched object is not a %s: %v", kind, err))
	}
	return out, nil
}
