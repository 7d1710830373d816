package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Status is the Kubernetes-style error body every failed request returns.
type Status struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Status     string         `json:"status"`
	Message    string         `json:"message"`
	Reason     string         `json:"reason"`
	Code       int            `json:"code"`
	Details    *StatusDetails `json:"details,omitempty"`
}

// StatusDetails names the object and the invalid fields.
type StatusDetails struct {
	Name   string     `json:"name,omitempty"`
	Group  string     `json:"group,omitempty"`
	Kind   string     `json:"kind,omitempty"`
	Causes []v1.Cause `json:"causes,omitempty"`
}

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

func methodNotAllowed(err error) error {
	return &httpError{code: http.StatusMethodNotAllowed, reason: "MethodNotAllowed", err: err}
}

// statusFor builds the Status body for err.
func statusFor(err error, kind, name string) Status {
	st := Status{APIVersion: "v1", Kind: "Status", Status: "Failure", Message: err.Error(),
		Code: errdefs.HTTPStatus(err), Reason: errdefs.Reason(err)}
	var he *httpError
	var group string
	if errors.As(err, &he) {
		st.Code, st.Reason = he.code, he.reason
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
		st.Details.Causes = fe.Causes()
	}
	return st
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error, kind, name string) {
	st := statusFor(err, kind, name)
	writeJSON(w, st.Code, st)
}
