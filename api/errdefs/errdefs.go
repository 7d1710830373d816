package errdefs

import (
	"errors"
	"net/http"
)

var (
	// ErrNotFound: the object or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create found the key already present.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a compare-and-swap lost (stale resourceVersion). A failed
	// fence is ErrNotLeader, never ErrConflict.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the request is malformed or fails validation.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: a dependency (etcd, containerd, a peer) cannot be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthorized: missing or wrong credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotLeader: a fenced write was attempted by a process that no longer leads.
	ErrNotLeader = errors.New("not leader")
	// ErrExpired: the revision asked for is older than the store's
	// compaction; the caller must start again from a current one.
	ErrExpired = errors.New("expired")
)

// IsNotFound reports whether err wraps ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err wraps ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsAlreadyExists reports whether err wraps ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// HTTPStatus maps an error to the HTTP status an API edge should answer.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidArgument):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrExpired):
		return http.StatusGone
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotLeader):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Reason returns the machine-readable reason (Kubernetes Status style) for err.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "NotFound"
	case errors.Is(err, ErrAlreadyExists):
		return "AlreadyExists"
	case errors.Is(err, ErrConflict):
		return "Conflict"
	case errors.Is(err, ErrInvalidArgument):
		return "Invalid"
	case errors.Is(err, ErrUnauthorized):
		return "Unauthorized"
	case errors.Is(err, ErrExpired):
		return "Expired"
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotLeader):
		return "ServiceUnavailable"
	default:
		return "InternalError"
	}
}

// FromHTTP maps an HTTP status and reason back to a sentinel, for clients.
func FromHTTP(status int) error {
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return ErrInvalidArgument
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusGone:
		return ErrExpired
	}
	return nil
}
