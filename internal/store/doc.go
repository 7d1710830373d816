// Package store declares kiln's contract with its state store: a key-value
// space with compare-and-swap on revision, leases, fenced writes and
// watches, plus the one place the etcd key layout is spelled out (keys.go).
//
// It also holds the one way a role mirrors a prefix into memory: Follow
// (list, then watch from the list's revision, re-listing after a failed
// watch) feeds a typed Cache (decoder, typed map, change callbacks with the
// last value of deleted keys) through a Mirror, which delivers every
// prefix's batches on one channel to the goroutine that owns the caches.
// Fenced wraps a Store so every write carries a leader's fence; leader
// loops are handed nothing else.
//
// Implementations live in sub-packages: etcdstore (the real one) and
// memstore (an in-memory fake for unit tests). storetest is the conformance
// suite both must pass. This package must never import an etcd client.
package store
