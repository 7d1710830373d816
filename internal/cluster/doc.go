// Package cluster defines the records kiln's roles exchange through etcd
// outside the Knative registry: node records (agent), desired scale
// (autoscaler), placements (scheduler), observed instances (agent) and live
// activators (each activator its own).
// Each record has exactly one writer role; see ARCHITECTURE.md. This package
// holds data shapes only and must never do I/O.
package cluster
