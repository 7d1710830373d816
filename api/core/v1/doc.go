// Package v1 is the one core/v1 kind kiln serves: Secret, limited to
// kubernetes.io/tls secrets (a certificate chain and its private key), in
// the Kubernetes JSON/YAML shape so `kubectl create secret tls --dry-run -o
// yaml` output applies unchanged.
//
// Pure: types, defaults, validation and parsing; no I/O.
package v1
