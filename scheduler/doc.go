// Package scheduler places revisions' instances on nodes: it turns the
// desired scale of every revision (scale/) into placements
// (placements/<node>/<instance>) on live nodes (nodes/), within their
// capacity, and re-places what a lost node or a failed instance leaves
// behind. See README.md for the pipeline and its words.
//
// It owns the placements/ prefix and writes only while it leads, through
// a store fenced with its term (store.Fenced), so no write can leave the
// fence out. Plan, the decision, is pure: no I/O and no clock reads, so
// it is property-tested. The package must never write scale/, nodes/ or
// instances/, never talk to an agent directly (agents watch their own
// placements), and never poll: every run of Plan follows a watch event or
// a known deadline (a failed instance's backoff).
package scheduler
