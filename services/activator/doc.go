// Package activator is the buffering proxy in front of revisions that have
// no ready instance (Knative's activator). A request names its revision with
// the Knative-Serving-Revision and Knative-Serving-Namespace headers the
// edge adds; the activator forwards it to a ready instance of that revision
// (round robin over their queue-proxy endpoints), or holds it until one is
// ready, the request's timeout passes, or the per-revision queue is full.
//
// It learns endpoints by watching instances/ (List + Watch, re-list on watch
// error) and is woken by that watch, never by polling. It writes nothing.
// Poking the autoscaler when a request waits comes with the real autoscaler
// (a later issue): today a revision with scale 0 stays at 0 and its
// requests time out.
package activator
