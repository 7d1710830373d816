// Package reporter is the client side of the autoscaler's gRPC contract
// (proto/kiln/autoscaler/v1): it follows the autoscaler leader's address,
// streams one MetricBatch per reporting period to it, and sends Pokes.
// Agents (one Stat per instance) and activators (one Stat per revision they
// hold requests for) use it.
//
// It owns the gRPC connection to the leader and nothing else: it never
// decides scale, never reads or writes etcd itself (the leader's address
// comes from a Leaders function, election.Observe in production), and
// drops a period's figures rather than queueing them when the leader is
// unreachable — the autoscaler works on windows and a stale second is
// worth less than the next fresh one.
package reporter
