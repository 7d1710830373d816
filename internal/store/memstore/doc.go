// Package memstore is an in-memory store.Store for unit tests. It follows
// etcd's revision semantics (one global revision, per-key create and mod
// revisions) and passes the same conformance suite as etcdstore. It must
// never be used by a kiln process or an end-to-end test.
package memstore
