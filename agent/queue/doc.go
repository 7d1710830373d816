// Package queue is the per-instance queue-proxy the node agent runs in
// front of every container: a reverse proxy that enforces the revision's
// containerConcurrency with a breaker (bounded in-flight requests plus a
// bounded wait queue), bounds each request by the revision's timeout,
// answers the network probe itself, counts requests for the autoscaler and
// drains on stop. It knows nothing about containerd, CNI or etcd: it is
// given a target address and a readiness flag, and must never decide on its
// own whether the instance lives or dies. With Config.TLS it serves mutual
// TLS and admits only callers passing Config.Check (edges and activators).
//
// Run as a process of its own (kilnd queue, started by the agent, one per
// instance), RunControlled serves the agent a control API on a unix socket
// (control.go: state, readiness, reports, drain, stop), so the data path
// outlives an agent crash or upgrade. The one thing it decides alone is
// fencing: with no control request for the agent's node lease TTL, the
// cluster has re-placed the instance, so it stops accepting, finishes its
// requests in flight and exits.
package queue
