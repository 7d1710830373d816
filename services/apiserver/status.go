package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Status is the Kubernetes Status body every failed request returns.
type Status = k8smeta.Status

// StatusDetails names the object and the invalid fields.
type StatusDetails = k8smeta.StatusDetails

// conflictMessage is Kubernetes' reason for a stale resourceVersion.
const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// httpError overrides the errdefs mapping where HTTP has a better word.
type httpError struct {
	code   int
	reason string
	err    error
	// group, kind and name, when kind is set, replace the details the
	// handler gives: a denial names the resource as the authorizer saw it.
	group, kind, name string
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(err error) error {
	return &httpError{code: http.StatusBadRequest, reason: "BadRequest", err: err}
}

// successStatus is the body of a delete that answers a Status.
func successStatus(group, kind, name string) Status {
	return Status{TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: k8smeta.StatusSuccess,
		Code: http.StatusOK, Details: &StatusDetails{Group: group, Kind: kind, Name: name}}
}

// statusFor builds the Status body for err from kiln's sentinels; kind and
// name fill its details.
func statusFor(err error, kind, name string) Status {
	st := Status{TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: k8smeta.StatusFailure,
		Message: err.Error(), Code: int32(errdefs.HTTPStatus(err)), Reason: k8smeta.StatusReason(errdefs.Reason(err))}
	var se k8serrors.APIStatus
	if errors.As(err, &se) {
		st = se.Status()
		st.APIVersion, st.Kind = "v1", "Status"
		return st
	}
	var he *httpError
	var group string
	if errors.As(err, &he) {
		st.Code, st.Reason = int32(he.code), k8smeta.StatusReason(he.reason)
		if he.kind != "" {
			group, kind, name = he.group, he.kind, he.name
		}
	}
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		st.Code = http.StatusConflict
	}
	if kind != "" || name != "" {
		st.Details = &StatusDetails{Group: group, Kind: kind, Name: name}
	}
	var fe *v1.FieldError
	if errors.As(err, &fe) {
		if st.Details == nil {
			st.Details = &StatusDetails{}
		}
		for _, e := range fieldErrors(fe) {
			st.Details.Causes = append(st.Details.Causes, k8smeta.StatusCause{Type: k8smeta.CauseType(e.Type), Message: e.ErrorBody(), Field: e.Field})
		}
	}
	return st
}

// statusForResource words err as Kubernetes does for a's objects:
// services.serving.knative.dev "x" not found, Service.serving.knative.dev "x"
// is invalid: ..., with the details Kubernetes sets.
func statusForResource(err error, a apiResource, name string) Status {
	var se k8serrors.APIStatus
	var he *httpError
	var fe *v1.FieldError
	gr := a.GroupResource()
	var k *k8serrors.StatusError
	switch {
	case errors.As(err, &se), errors.As(err, &he):
		return statusFor(err, a.Resource, name)
	case errors.As(err, &fe):
		k = k8serrors.NewInvalid(schema.GroupKind{Group: a.Group, Kind: a.Kind}, name, fieldErrors(fe))
		// kubectl prints the causes; kn and client-go print the message,
		// which says what Knative's validation says, in its words.
		k.ErrStatus.Message = fmt.Sprintf("%s.%s %q is invalid: validation failed: %s", a.Kind, a.Group, name, fe.Error())
	case errdefs.IsNotFound(err):
		k = k8serrors.NewNotFound(gr, name)
	case errdefs.IsAlreadyExists(err):
		k = k8serrors.NewAlreadyExists(gr, name)
	case errdefs.IsConflict(err):
		k = k8serrors.NewConflict(gr, name, errors.New(conflictMessage))
	default:
		return statusFor(err, a.Resource, name)
	}
	return statusFor(k, "", "")
}

// fieldErrors turns a Knative FieldError into Kubernetes field errors, one
// per cause, so the Invalid Status lists each path with its complaint.
func fieldErrors(fe *v1.FieldError) field.ErrorList {
	var out field.ErrorList
	for _, c := range fe.Causes() {
		p := field.NewPath(c.Field)
		if c.Field == "" {
			p = field.NewPath("<root>")
		}
		msg := c.Message
		if c.Details != "" {
			msg += ": " + c.Details
		}
		switch {
		case strings.HasPrefix(c.Message, "missing field"):
			out = append(out, field.Required(p, ""))
		case strings.HasPrefix(c.Message, "must not set"):
			out = append(out, field.Forbidden(p, ""))
		default:
			out = append(out, field.Invalid(p, field.OmitValueType{}, msg))
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error, kind, name string) {
	st := statusFor(err, kind, name)
	writeJSON(w, int(st.Code), st)
}
