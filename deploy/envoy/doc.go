// Package envoy holds the shipped Envoy bootstrap for kiln edges
// (bootstrap.yaml) and the test that keeps it loadable. It has no code:
// Envoy reads the file, kiln never does.
package envoy
