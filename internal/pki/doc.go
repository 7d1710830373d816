// Package pki is kiln's certificate authority: it creates the CA, issues
// certificates that name a process's identity (its role, and the node or
// subject it acts for) in a URI SAN, spiffe://kiln/<role>/<name>, and builds
// the TLS configurations roles use for mutual TLS, where every listener
// demands a certificate from the CA and checks the caller's role.
//
// It does only local crypto and file I/O: no network, no store, so the kiln
// CLI (`kiln admin tls ...`) can link it.
package pki
