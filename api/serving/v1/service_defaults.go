package v1

import "context"

// SetDefaults fills apiVersion/kind, the template's defaults, and the
// traffic block: all traffic to the latest revision when none is given.
func (s *Service) SetDefaults(ctx context.Context) {
	setTypeMeta(&s.TypeMeta, KindService)
	s.Spec.Template.Spec.SetDefaults(ctx)
	if len(s.Spec.Traffic) == 0 {
		latest, pct := true, int64(100)
		s.Spec.Traffic = []TrafficTarget{{LatestRevision: &latest, Percent: &pct}}
	}
	defaultTraffic(s.Spec.Traffic)
}
