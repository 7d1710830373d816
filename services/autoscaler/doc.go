// Package autoscaler decides how many instances each revision should run
// and writes it to scale/<namespace>/<revision> (cluster.Scale) while it
// leads (election role "autoscaler"; every write fenced).
//
// This is a placeholder for the real Knative Pod Autoscaler, which a later
// issue brings (metrics from queue-proxies, stable/panic windows, scale to
// zero after the grace period, activator pokes). For now a revision runs
// max(min-scale, initial scale) instances while it is routable — named in a
// Route's status.traffic, or its Configuration's latest created revision —
// and 0 otherwise, capped by max-scale. Decide is the pure decision.
//
// The package owns scale/ and must never write anything else; it is driven
// by watches on the registry (revisions, routes, configurations) and on
// scale/, never by polling.
package autoscaler
