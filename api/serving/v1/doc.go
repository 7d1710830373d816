// Package v1 is kiln's copy of the serving.knative.dev/v1 object model:
// Service, Configuration, Revision and Route, in the exact JSON/YAML shape
// Knative uses, with their defaults (SetDefaults), validation (Validate) and
// status lifecycle helpers.
//
// Everything here is pure: no I/O, no clock reads (callers pass now). The
// API server runs SetDefaults and Validate at the edge; reconcilers never
// re-validate.
package v1
