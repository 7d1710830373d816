package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// routeTargets is what Knative's route labeler marks as targeted by a
// route: every revision and configuration its spec or status traffic
// names, the configuration that controls a named revision, and the
// latest created revision of a configuration followed with
// latestRevision (so a new revision is marked before it takes traffic).
func (r *reconciler) routeTargets(ns string, route *v1.Route) (revs, cfgs map[string]bool) {
	revs, cfgs = map[string]bool{}, map[string]bool{}
	if route == nil {
		return revs, cfgs
	}
	for _, t := range append(slices.Clone(route.Status.Traffic), route.Spec.Traffic...) {
		cfgName := t.ConfigurationName
		if t.RevisionName != "" {
			revs[t.RevisionName] = true
			if rev, err := r.revisions.Get(ns, t.RevisionName); err == nil {
				if owner := controllerNamed(&rev.Metadata, v1.KindConfiguration); owner != "" {
					cfgName = owner
				}
			}
		}
		if cfgName == "" {
			continue
		}
		cfgs[cfgName] = true
		if t.LatestRevision != nil && *t.LatestRevision {
			if cfg, err := r.configurations.Get(ns, cfgName); err == nil && cfg.Status.LatestCreatedRevisionName != "" {
				revs[cfg.Status.LatestCreatedRevisionName] = true
			}
		}
	}
	return revs, cfgs
}

// withRoute returns the serving.knative.dev/routes annotation value with
// route added (targeted) or removed, and whether it changed; "" means the
// annotation goes.
func withRoute(annotations map[string]string, route string, targeted bool) (string, bool) {
	var names []string
	for _, n := range strings.Split(annotations[v1.RoutesAnnotation], ",") {
		if n = strings.TrimSpace(n); n != "" && n != route {
			names = append(names, n)
		}
	}
	if targeted {
		names = append(names, route)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	v := strings.Join(names, ",")
	old, had := annotations[v1.RoutesAnnotation]
	return v, old != v || (v == "" && had)
}

// setRoutesAnnotation writes v into m's serving.knative.dev/routes
// annotation, deleting it when v is empty.
func setRoutesAnnotation(m *metav1.ObjectMeta, v string) {
	if v == "" {
		delete(m.Annotations, v1.RoutesAnnotation)
		return
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[v1.RoutesAnnotation] = v
}

// labelRouteTargets keeps route name (nil when the route is gone) in the
// serving.knative.dev/routes annotation of exactly the revisions and
// configurations of ns it targets, as Knative's route labeler does.
func (r *reconciler) labelRouteTargets(ctx context.Context, ns, name string, route *v1.Route) error {
	revs, cfgs := r.routeTargets(ns, route)
	for _, rev := range r.revisions.List(ns) {
		if v, changed := withRoute(rev.Metadata.Annotations, name, revs[rev.Metadata.Name]); changed {
			setRoutesAnnotation(&rev.Metadata, v)
			if _, err := r.revisions.Update(ctx, rev); ignoreNotFound(err) != nil {
				return fmt.Errorf("annotate revision %q with its routes: %w", rev.Metadata.Name, err)
			}
		}
	}
	for _, cfg := range r.configurations.List(ns) {
		if v, changed := withRoute(cfg.Metadata.Annotations, name, cfgs[cfg.Metadata.Name]); changed {
			setRoutesAnnotation(&cfg.Metadata, v)
			if _, err := r.configurations.Update(ctx, cfg); ignoreNotFound(err) != nil {
				return fmt.Errorf("annotate configuration %q with its routes: %w", cfg.Metadata.Name, err)
			}
		}
	}
	return nil
}
