package controller

import (
	"cmp"
	"slices"
	"strings"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// ref names an object a Route's traffic can reach: a Configuration or a
// Revision in a namespace.
type ref struct {
	kind, ns, name string // kind is kConfig or kRevision
}

// tracker is Knative's tracker for Routes: which Routes reference each
// Configuration and Revision, through spec.traffic (configurationName,
// revisionName) or the revisions status.traffic resolved to. It is fed by
// the route cache's change callback, so a Configuration or Revision event
// enqueues only the Routes it can affect instead of every Route. Owned by
// the leader's goroutine; not safe for concurrent use.
type tracker struct {
	byRef   map[ref]map[string]bool // ref → route names (same namespace)
	byRoute map[routeID][]ref       // what each route references now
}

type routeID struct{ ns, name string }

func newTracker() *tracker {
	return &tracker{byRef: map[ref]map[string]bool{}, byRoute: map[routeID][]ref{}}
}

// refsOf is every Configuration and Revision route reaches.
func refsOf(route *v1.Route) []ref {
	ns := route.Metadata.Namespace
	var out []ref
	add := func(t v1.TrafficTarget) {
		if t.ConfigurationName != "" {
			out = append(out, ref{kConfig, ns, t.ConfigurationName})
		}
		if t.RevisionName != "" {
			out = append(out, ref{kRevision, ns, t.RevisionName})
		}
	}
	for _, t := range route.Spec.Traffic {
		add(t)
	}
	for _, t := range route.Status.Traffic {
		add(t)
	}
	slices.SortFunc(out, func(a, b ref) int {
		return cmp.Or(strings.Compare(a.kind, b.kind), strings.Compare(a.name, b.name))
	})
	return slices.Compact(out)
}

// Track records what route references now, replacing what it referenced.
func (t *tracker) Track(route *v1.Route) {
	id := routeID{route.Metadata.Namespace, route.Metadata.Name}
	t.Untrack(id.ns, id.name)
	refs := refsOf(route)
	if len(refs) == 0 {
		return
	}
	t.byRoute[id] = refs
	for _, r := range refs {
		if t.byRef[r] == nil {
			t.byRef[r] = map[string]bool{}
		}
		t.byRef[r][id.name] = true
	}
}

// Untrack forgets a deleted route.
func (t *tracker) Untrack(ns, name string) {
	id := routeID{ns, name}
	for _, r := range t.byRoute[id] {
		delete(t.byRef[r], name)
		if len(t.byRef[r]) == 0 {
			delete(t.byRef, r)
		}
	}
	delete(t.byRoute, id)
}

// RoutesFor returns the names of the routes that reference r, sorted.
func (t *tracker) RoutesFor(r ref) []string {
	out := make([]string, 0, len(t.byRef[r]))
	for name := range t.byRef[r] {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
