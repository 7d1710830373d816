// Package activator is the buffering proxy in front of revisions without
// enough ready capacity (Knative's activator). A request names its revision
// with the Knative-Serving-Revision and Knative-Serving-Namespace headers the
// edge adds. The activator forwards it to a ready instance of that revision
// or holds it in a bounded per-revision queue (a full queue answers 503)
// until one has a free slot, the revision's timeoutSeconds passes, or the
// client leaves. A revision the registry does not have is answered 404 at
// once, with nothing kept for its name.
//
// Throttling follows Knative: each ready instance has containerConcurrency
// slots (unlimited when 0) and this activator never has more requests in
// flight to one instance than that; among instances with a free slot the
// least loaded wins, ties round robin; queued requests are served in
// arrival order. A request that could not connect to an instance (one just
// started or just stopping) is retried, so a request the activator accepted
// is not lost while instances come and go. Forwarded requests carry
// K-Proxy-Request: activator so queue-proxies count them as proxied.
//
// It learns instances, revisions and its peers by following instances/,
// the registry's revisions and activators/ (typed store.Caches behind one
// store.Mirror, owned by Run's loop), never by polling. With an autoscaler
// it pokes the leader the moment a request waits for a revision without a
// ready instance (retrying while requests still wait; the retries end with
// Run), and streams the concurrency it holds per revision every second.
// Every goroutine Run starts is joined before it returns. GET /metrics (no revision headers) counts the requests it took
// per revision.
//
// Subsetting across replicas (Knative's): with an advertised address the
// activator registers itself under activators/<identity> on its own lease
// (its only write; revoked by Deregister, first thing on a graceful stop
// while it still serves, so it vanishes at once, and a dead one vanishes
// with its lease), and the xds server routes to every
// registered activator. Each follows activators/ and takes, of every
// instance's containerConcurrency, cc/N slots with N live activators, the
// remainder going to different activators for different instances, so
// the N shares add up to exactly containerConcurrency. With fewer slots
// in all than activators, one without any share still gets one slot on
// one instance (Knative's minimum of one); the queue-proxy's breaker then
// holds what goes over the hard limit. It never decides scale.
//
// Under mutual TLS (Options.UpstreamTLS, AutoscalerCreds) it forwards to
// queue-proxies over TLS with its own certificate and reports to the
// autoscaler the same way; `kilnd activator` admits only gateway identities
// to its listener, /metrics included.
package activator
