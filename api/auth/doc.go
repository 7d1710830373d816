// Package auth holds the contract of kiln's API access control that clients
// share: the roles a subject holds per namespace (view, edit, admin) or
// cluster-wide (cluster-admin), and the kiln.dev/v1 Token object through
// which a cluster-admin issues, lists and revokes bearer tokens.
//
// It does no I/O and imports nothing under internal/, so the kiln CLI links
// it without the store. Deciding a request is the apiserver's job.
package auth
