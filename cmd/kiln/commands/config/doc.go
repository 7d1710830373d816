// Package config is `kiln config`: list, show (with defaults) and change the
// cluster-wide configs named after Knative's config maps (autoscaler,
// defaults, gc, domain, network, features, deployment). It only talks to the
// apiserver's config API; validation happens on the server.
package config
