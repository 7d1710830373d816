package autoscaler

import (
	"strconv"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// RevisionKey names a revision.
type RevisionKey struct{ Namespace, Name string }

func (k RevisionKey) String() string { return k.Namespace + "/" + k.Name }

// DefaultInitialScale is the scale a routable revision starts at when its
// annotations ask for nothing else (Knative's initial-scale default).
const DefaultInitialScale = 1

// Decide returns the desired scale of every revision in revs:
// max(min-scale, initial scale) when the revision is routable, else 0, and
// never above max-scale when that is > 0. A revision is routable when a
// Route's status.traffic names it or it is its Configuration's
// status.latestCreatedRevisionName (so a new revision starts before traffic
// moves to it). Knative ignores min-scale for unroutable revisions, and
// would scale them to zero after a grace period; this placeholder does so at
// once.
func Decide(revs []*v1.Revision, routes []*v1.Route, cfgs []*v1.Configuration) map[RevisionKey]int {
	routable := map[RevisionKey]bool{}
	for _, rt := range routes {
		for _, tt := range rt.Status.Traffic {
			if tt.RevisionName != "" {
				routable[RevisionKey{rt.Metadata.Namespace, tt.RevisionName}] = true
			}
		}
	}
	for _, c := range cfgs {
		if n := c.Status.LatestCreatedRevisionName; n != "" {
			routable[RevisionKey{c.Metadata.Namespace, n}] = true
		}
	}
	out := make(map[RevisionKey]int, len(revs))
	for _, r := range revs {
		k := RevisionKey{r.Metadata.Namespace, r.Metadata.Name}
		a := r.Metadata.Annotations
		want := 0
		if routable[k] {
			initial := DefaultInitialScale
			if n, ok := annotation(a, v1.AutoscalingInitialScale); ok && n >= 1 {
				// initial-scale 0 needs a cluster opt-in Knative kiln
				// does not have yet, so it is treated as the default.
				initial = n
			}
			want = initial
			if n, ok := annotation(a, v1.AutoscalingMinScaleAnnotation); ok && n > want {
				want = n
			}
		}
		if n, ok := annotation(a, v1.AutoscalingMaxScaleAnnotation); ok && n > 0 && want > n {
			want = n
		}
		out[k] = want
	}
	return out
}

// annotation parses a non-negative integer annotation. Validation at the
// API edge rejects bad values; one that slips through is ignored.
func annotation(a map[string]string, name string) (int, bool) {
	s, ok := a[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
