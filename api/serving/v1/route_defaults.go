package v1

import "context"

// SetDefaults fills apiVersion/kind and each target's latestRevision.
func (r *Route) SetDefaults(context.Context) {
	setTypeMeta(&r.TypeMeta, KindRoute)
	defaultTraffic(r.Spec.Traffic)
}

// defaultTraffic makes latestRevision explicit, as Knative does: a target
// naming a revision pins it, any other target follows the latest.
func defaultTraffic(tt []TrafficTarget) {
	for i := range tt {
		if tt[i].LatestRevision == nil {
			v := tt[i].RevisionName == ""
			tt[i].LatestRevision = &v
		}
	}
}
