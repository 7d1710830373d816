// Package config holds kiln's cluster-wide configuration: the equivalents
// of Knative's config-* maps (autoscaler, defaults, gc, domain, network,
// features, deployment), stored under config/<name> in etcd as
// {"data": {"key": "value"}} with Knative's key names and defaults, and the
// kiln.dev/v1 Config object the API serves them as (as Knative's
// pkg/apis/config).
//
// Parse validates a config document and names the offending key; a Snapshot
// holds every config parsed, and defaulting and validation read it from the
// context. internal/liveconfig keeps a Snapshot current in running roles.
// This package does no I/O and imports nothing under internal/, so clients
// (the kiln CLI) share it without linking the store.
package config
