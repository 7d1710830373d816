// Package liveconfig keeps the cluster configs current in a running role:
// a Watcher mirrors config/ from the store (a store.Cache) and publishes a
// parsed config.Snapshot after every change, so roles apply a change without
// a restart. It only reads the store; the API server is config/'s writer.
package liveconfig
