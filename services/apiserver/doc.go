// Package apiserver serves the serving.knative.dev/v1 REST API over the
// registry: get, list, create, update, delete and watch for Services,
// Configurations, Revisions and Routes, with bearer-token authentication,
// defaulting and validation at the edge, and Kubernetes-Status-shaped errors.
//
// It owns the spec and metadata of registry objects as users write them.
// It must never write status (the controller owns it; a user's status is
// dropped and the stored one kept), never create Revisions (the controller
// stamps them), and never talk to etcd except through internal/registry.
package apiserver
