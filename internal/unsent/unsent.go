// Package unsent decides when a failed request may be sent to another
// peer: one that provably never reached its peer always (the activator,
// the gateway, the CLI), and one of an idempotent method whose peer broke
// the connection before answering (the activator and the gateway, as
// Envoy's retry_on reset is set for those methods).
package unsent

import (
	"errors"
	"net"
	"net/http"
)

// Is reports whether err means the connection could not be opened, so
// nothing of the request reached the peer.
func Is(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Replayable reports whether req may be sent again after err, although
// its peer may have received it: an idempotent method without a body (RFC
// 9110 9.2.2) whose connection broke, not one that timed out (sending it
// again would only double the wait).
func Replayable(req *http.Request, err error) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
