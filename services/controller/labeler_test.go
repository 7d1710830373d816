package controller

import (
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func TestWithRoute(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		targeted    bool
		want        string
		wantChanged bool
	}{
		{name: "first route", annotations: nil, targeted: true, want: "hello", wantChanged: true},
		{name: "already there", annotations: map[string]string{v1.RoutesAnnotation: "hello"}, targeted: true, want: "hello"},
		{name: "added sorted", annotations: map[string]string{v1.RoutesAnnotation: "alpha,zeta"}, targeted: true, want: "alpha,hello,zeta", wantChanged: true},
		{name: "removed", annotations: map[string]string{v1.RoutesAnnotation: "alpha,hello"}, targeted: false, want: "alpha", wantChanged: true},
		{name: "last removed", annotations: map[string]string{v1.RoutesAnnotation: "hello"}, targeted: false, want: "", wantChanged: true},
		{name: "empty value dropped", annotations: map[string]string{v1.RoutesAnnotation: ""}, targeted: false, want: "", wantChanged: true},
		{name: "never there", annotations: map[string]string{"other": "x"}, targeted: false, want: ""},
		{name: "unsorted normalised", annotations: map[string]string{v1.RoutesAnnotation: "zeta,alpha"}, targeted: false, want: "alpha,zeta", wantChanged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := withRoute(tc.annotations, "hello", tc.targeted)
			if got != tc.want || changed != tc.wantChanged {
				t.Errorf("withRoute = %q, %v; want %q, %v", got, changed, tc.want, tc.wantChanged)
			}
		})
	}
}

func withRevRoutes(v string) func(*v1.Revision) {
	return func(r *v1.Revision) {
		if r.Metadata.Annotations == nil {
			r.Metadata.Annotations = map[string]string{}
		}
		r.Metadata.Annotations[v1.RoutesAnnotation] = v
	}
}

func withCfgRoutes(v string) func(*v1.Configuration) {
	return func(c *v1.Configuration) {
		if c.Metadata.Annotations == nil {
			c.Metadata.Annotations = map[string]string{}
		}
		c.Metadata.Annotations[v1.RoutesAnnotation] = v
	}
}

// routesOf is the serving.knative.dev/routes annotation, or "<none>".
func routesOf(m metav1.ObjectMeta) string {
	if v, ok := m.Annotations[v1.RoutesAnnotation]; ok {
		return v
	}
	return "<none>"
}

// The route reconciler keeps serving.knative.dev/routes on the revisions
// and configurations a route targets, as Knative's route labeler does.
func TestRouteAnnotatesTargets(t *testing.T) {
	hello := svc("hello")
	cfg1 := cfgFor(hello, withCfgReady("hello-00001"))
	rev1 := revFor(cfg1, withRevReady)
	// Generation 2: hello-00002 created, not ready yet.
	cfg2 := cfgFor(hello, withCfgGeneration(2), withCfgReady("hello-00001"), func(c *v1.Configuration) {
		c.Status.LatestCreatedRevisionName = "hello-00002"
	})
	rev2 := revFor(cfgFor(hello, withCfgGeneration(2)))
	pinned := svc("hello", withTraffic(v1.TrafficTarget{RevisionName: "hello-00002", Percent: ptr[int64](100)}))

	type want struct{ cfg, rev1, rev2 string }
	for _, tc := range []struct {
		name string
		objs []any
		want want
	}{{
		name: "latestRevision traffic marks the configuration and its ready revision",
		objs: []any{hello, cfg1, rev1, routeFor(hello)},
		want: want{cfg: "hello", rev1: "hello"},
	}, {
		name: "the latest created revision is marked before it is ready",
		objs: []any{hello, cfg2, rev1, rev2, routeFor(hello)},
		want: want{cfg: "hello", rev1: "hello", rev2: "hello"},
	}, {
		name: "other routes already recorded are kept, sorted",
		objs: []any{hello, withRoutesCfg(cfg1, "zeta"), revFor(cfg1, withRevReady, withRevRoutes("alpha")), routeFor(hello)},
		want: want{cfg: "hello,zeta", rev1: "alpha,hello"},
	}, {
		name: "a pinned revision marks its controlling configuration; untargeted revisions lose the route",
		objs: []any{pinned, withRoutesCfg(cfg2, "hello"), revFor(cfg1, withRevReady, withRevRoutes("hello")), rev2, routeFor(pinned)},
		want: want{cfg: "hello", rev1: "<none>", rev2: "hello"},
	}, {
		name: "a deleted route is removed everywhere, other routes stay",
		objs: []any{hello, withRoutesCfg(cfg1, "hello"), revFor(cfg1, withRevReady, withRevRoutes("alpha,hello"))},
		want: want{cfg: "<none>", rev1: "alpha"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.objs)
			if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
				t.Fatal(err)
			}
			got := want{cfg: routesOf(f.configuration(t, "hello").Metadata), rev1: routesOf(f.revision(t, "hello-00001").Metadata)}
			if tc.want.rev2 != "" {
				got.rev2 = routesOf(f.revision(t, "hello-00002").Metadata)
			}
			if got != tc.want {
				t.Errorf("routes annotations = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func withRoutesCfg(c *v1.Configuration, v string) *v1.Configuration {
	c = clone(c)
	withCfgRoutes(v)(c)
	return c
}

// The service reconciler leaves the route reconciler's annotation on the
// Configuration alone (no update, no fight).
func TestServiceKeepsRoutesAnnotation(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello, withCfgReady("hello-00001"), withCfgRoutes("hello"))
	f := newFixture(t, []any{hello, cfg, revFor(cfg, withRevReady), routeFor(hello, withRouteReady("hello-00001"))})
	before, err := f.reg.Configurations().Get(f.ctx, "default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.l.reconcileService(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	after := f.configuration(t, "hello")
	if routesOf(after.Metadata) != "hello" || after.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
		t.Errorf("configuration routes %q, resourceVersion %s -> %s", routesOf(after.Metadata), before.Metadata.ResourceVersion, after.Metadata.ResourceVersion)
	}
}
