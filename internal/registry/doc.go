// Package registry gives typed access to Knative objects stored under
// registry/<group>/<resource>/<namespace>/<name>: it sets server-owned
// metadata (uid, creationTimestamp, generation, resourceVersion = etcd mod
// revision) and turns updates into compare-and-swaps. It does not default
// or validate objects; that happens at the API edge.
package registry
