// Package store declares kiln's contract with its state store: a key-value
// space with compare-and-swap on revision, leases, fenced writes and
// watches, plus the one place the etcd key layout is spelled out (keys.go).
//
// Implementations live in sub-packages: etcdstore (the real one) and
// memstore (an in-memory fake for unit tests). storetest is the conformance
// suite both must pass. This package must never import an etcd client.
package store
