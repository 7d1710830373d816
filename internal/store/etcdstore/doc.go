// Package etcdstore implements store.Store on etcd (go.etcd.io/etcd/client/v3).
// It is, with internal/election, the only package that imports clientv3.
// Every conditional write is a single etcd transaction; nothing here retries
// a lost compare-and-swap — callers decide.
package etcdstore
