// Package v1 holds the object metadata, type metadata and status condition
// shapes shared by every kiln API group. They serialize exactly like their
// Kubernetes/Knative counterparts so Knative manifests round-trip unchanged.
// This package holds data shapes and pure helpers only; it must never do I/O.
package v1
