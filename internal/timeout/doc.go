// Package timeout enforces a revision's request timeouts on the data path
// (queue-proxy and activator) as Knative's timeout handler does:
// timeoutSeconds bounds the whole request, responseStartTimeoutSeconds the
// time to the response's first byte and idleTimeoutSeconds the time
// between writes. A request that times out before its response started
// gets 504 Gateway Timeout; one whose response already started keeps its
// status and is ended where it stands.
//
// It must never buffer a response: every write goes straight through.
package timeout
