// Package autoscaler is kiln's Knative Pod Autoscaler (KPA): it decides how
// many instances each revision should run and whether the activator stays in
// its data path, and writes that to scale/<namespace>/<revision>
// (cluster.Scale) while it leads (election role "autoscaler", campaigning
// with its advertised gRPC address; every write fenced and compare-and-swap).
//
// The pieces:
//
//   - server.go: the Autoscaler gRPC service (proto/kiln/autoscaler/v1).
//     Every replica serves it; only the leader acts, the others answer
//     FAILED_PRECONDITION. Agents stream one Stat per instance per second,
//     activators one per revision they hold requests for, and activators
//     Poke a revision at zero.
//   - metrics.go: per revision one-second buckets of concurrency and
//     requests per second summed over sources (Knative's timed float
//     buckets), read as stable and panic window averages. An instance's
//     proxied share is left out: the activator reports it.
//   - spec.go: a revision's annotations and containerConcurrency resolved
//     against config-autoscaler (Knative's keys, ranges and defaults).
//   - decide.go: the pure decision, Decide(spec, input, state) at a given
//     now: stable/panic windows, rate limits, bounds, initial, activation
//     and scale-down delay, excess burst capacity, and the scale-to-zero
//     sequence (active a stable window, then the activator goes into the
//     path, then the grace period, then zero). Wake is the poke decision.
//     A revision that wants instances but has none ready for
//     config-deployment's progress-deadline, with no request asking for
//     one, goes to zero at once (Knative's activation timeout; the
//     controller marks it ProgressDeadlineExceeded); the next request
//     wakes it again. The deadline counts from the first decision or the
//     wake-up this leader made, so a leader change restarts it.
//   - autoscaler.go: the leader loop. It follows the registry (revisions,
//     routes, configurations), instances/ (ready counts), scale/ and
//     config/ with watches (typed store.Caches behind one store.Mirror,
//     owned by one goroutine), decides every revision each tick (2s) and on
//     every change, and handles pokes at once. It writes only through a
//     store fenced with its term (store.Fenced).
//
// Under mutual TLS (Serve's options, internal/mtls with CallerCheck) only
// agents and activators may call, and a metric batch's source must be its
// sender: agent/<the node its certificate names>, or activator/....
//
// The package owns scale/ and must never write anything else, and never
// polls the store.
package autoscaler
