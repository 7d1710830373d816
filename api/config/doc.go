// Package config holds kiln's cluster-wide configuration: the equivalents
// of Knative's config-* maps (autoscaler, defaults, gc, domain, network,
// features, deployment), stored under config/<name> in etcd as
// {"data": {"key": "value"}} with Knative's key names and defaults.
//
// Parse validates a config document and names the offending key; a Watcher
// keeps a parsed Snapshot current so every role applies changes without a
// restart. The API server is the only writer of config/ keys; everything
// else reads. This package never writes to the store.
package config
