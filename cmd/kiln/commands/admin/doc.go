// Package admin is `kiln admin`: cluster administration. `kiln admin token`
// manages API bearer tokens of other subjects through the API (for a
// cluster-admin); `kiln admin tls` creates the kiln CA and role certificates
// for mutual TLS between kilnd roles, locally, not through the API.
//
// It must never link a server dependency (etcd, containerd): it speaks HTTP
// to the API and does local crypto and file writes through internal/pki.
package admin
