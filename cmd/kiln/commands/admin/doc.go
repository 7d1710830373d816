// Package admin is the `kiln admin` noun: operator tasks done on the
// operator's machine, not through the API. `kiln admin tls` creates the
// kiln CA and role certificates for mutual TLS between kilnd roles.
//
// It must never link a server dependency (etcd, containerd): it does local
// crypto and file writes only, through internal/pki.
package admin
