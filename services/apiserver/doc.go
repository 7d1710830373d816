// Package apiserver serves the serving.knative.dev/v1 REST API over the
// registry: get, list, create, update, delete and watch for Services,
// Configurations, Revisions and Routes, with bearer-token authentication,
// defaulting and validation at the edge, and Kubernetes-Status-shaped errors.
// It also serves the cluster configs (kiln.dev/v1 configs: get, replace,
// merge-patch, reset) and is the only writer of config/ keys, validating
// every document with api/config before it is stored. Every write is
// defaulted and validated with the configs as stored at that moment.
//
// It owns the spec and metadata of registry objects as users write them.
// It must never write status (the controller owns it; a user's status is
// dropped and the stored one kept), never create or update Revisions (the
// controller stamps them; a user may only delete one, Knative's
// user-initiated `kn revision delete`, the one write to registry revisions
// that is not the controller's), and never talk to etcd except through internal/registry
// (and the store's config/ keys, for the configs).
package apiserver
