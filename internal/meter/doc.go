// Package meter measures load the way the autoscaler reads it: a Meter
// integrates requests held over time into Knative's Stat (average
// concurrency and request counts per period, the activator-proxied part
// apart), and ProxyHeaderName marks the requests the activator forwarded.
// The queue-proxy and the activator both measure with it. It does no I/O.
package meter
