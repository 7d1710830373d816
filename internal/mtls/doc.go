// Package mtls puts internal/pki's mutual TLS on kiln's listeners and
// clients between roles: gRPC server options and interceptors that admit
// only some roles, an HTTP middleware doing the same for the data path, and
// the client side of both, which checks the server's role (not its host
// name: queue-proxies listen on whatever address their node has).
//
// A zero pki.Files means plain TCP, as before; a role logs that once.
// It must never decide who may call what: each listener passes its own
// check (pki.Allow).
package mtls
