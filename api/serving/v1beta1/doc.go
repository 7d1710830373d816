// Package v1beta1 is kiln's copy of Knative's serving.knative.dev/v1beta1
// DomainMapping: a custom domain name mapped to a Knative Service or Route,
// optionally served over HTTPS with a TLS secret. Documents written for the
// older serving.knative.dev/v1alpha1 (the shape is the same) are accepted and
// stored as v1beta1.
//
// Like api/serving/v1 it is pure: types, SetDefaults, Validate (every error
// with its Knative field path) and status lifecycle helpers. It must never do
// I/O or read a clock; callers pass now.
package v1beta1
