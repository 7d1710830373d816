// Package controller reconciles Knative objects: a Service into its
// Configuration and Route, a Configuration into one immutable Revision per
// template generation, a Revision's status from the instances agents report,
// and a Route's traffic into concrete revisions and URLs. It is a singleton
// (leader-elected); every write it makes is fenced with the leader's fence.
//
// The controller owns registry status and child objects. It never writes
// scale/, placements/ or instances/, and it never validates user input:
// that happens at the API edge.
package controller
