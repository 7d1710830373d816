// Package controller reconciles Knative objects: a Service into its
// Configuration and Route, a Configuration into one immutable Revision per
// template generation, a Revision's status from the instances agents report,
// a Route's traffic into concrete revisions and URLs and the core/v1
// Service it keeps (services/, created once, then the Route's labels and
// annotations added to its own as Knative does), and a DomainMapping into a
// cluster-wide domain claim. It is a singleton (leader-elected).
//
// While it leads, one goroutine owns everything: typed store.Caches of the
// registry kinds, instances/, domainclaims/ and services/ (fed by one store.Mirror),
// the indexes their change callbacks keep (instances by revision, the
// tracker from Configurations and Revisions to the Routes that reference
// them) and a rate-limited work queue. Reconcilers read only the caches;
// they write through a registry over store.Fenced, so no write can miss the
// leader's fence, and each successful write is recorded in its cache at
// once. Lead joins every goroutine it starts before it returns.
//
// The controller owns registry status and child objects, domainclaims/ and
// services/.
// It never writes scale/, placements/ or instances/, and it never validates
// user input: that happens at the API edge.
package controller
