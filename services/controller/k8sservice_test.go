package controller

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// k8sService reads the stored Service of the Route name, and its revision.
func (f *fixture) k8sService(t *testing.T, name string) (*corev1.Service, int64) {
	t.Helper()
	kv, err := f.st.Get(f.ctx, store.ServiceKey("default", name))
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	if strings.Contains(string(kv.Value), `"resourceVersion"`) {
		t.Errorf("service %s is stored with its resourceVersion: %s", name, kv.Value)
	}
	s, err := decodeK8sService(kv)
	if err != nil {
		t.Fatal(err)
	}
	return s.svc, s.rev
}

func (f *fixture) noK8sService(t *testing.T, name string) {
	t.Helper()
	_, err := f.st.Get(f.ctx, store.ServiceKey("default", name))
	f.gone(t, "service "+name, err)
}

func withRouteLabels(kv ...string) func(*v1.Route) {
	return func(r *v1.Route) {
		for i := 0; i+1 < len(kv); i += 2 {
			r.Metadata.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withRouteAnnotations(kv ...string) func(*v1.Route) {
	return func(r *v1.Route) {
		if r.Metadata.Annotations == nil {
			r.Metadata.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Metadata.Annotations[kv[i]] = kv[i+1]
		}
	}
}

// k8sSvcFor is the Service the controller created for route, with extra
// labels and annotations it gained since.
func k8sSvcFor(route *v1.Route, opts ...func(*corev1.Service)) *corev1.Service {
	s := resources.MakeK8sService(route)
	s.UID = types.UID("uid-k8s-" + route.Metadata.Name)
	s.CreationTimestamp = k8smeta.NewTime(testNow.Add(-time.Hour))
	for _, o := range opts {
		o(s)
	}
	return s
}

func withK8sLabels(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withK8sAnnotations(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func TestReconcileRouteK8sService(t *testing.T) {
	hello := svc("hello")
	readyCfg := cfgFor(hello, withCfgReady("hello-00001"))
	readyRev := revFor(readyCfg, withRevReady)
	juicyRoute := routeFor(hello, withRouteLabels("juicy", "yes", v1.VisibilityLabelKey, v1.VisibilityClusterLocal),
		withRouteAnnotations("serving.knative.dev/creator", "alice", "serving.knative.dev/lastModifier", "bob", "juicy", "yes"))
	plainRoute := routeFor(hello, withRouteAnnotations("serving.knative.dev/creator", "alice", "serving.knative.dev/lastModifier", "carol"))
	runCases(t, []reconcileCase{{
		name: "a route's service is created with its labels and annotations",
		objs: []any{hello, readyCfg, readyRev, juicyRoute},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			s, _ := f.k8sService(t, "hello")
			wantLabels := map[string]string{v1.ServiceLabelKey: "hello", v1.RouteLabelKey: "hello", "juicy": "yes"}
			if !maps.Equal(s.Labels, wantLabels) {
				t.Errorf("labels = %v, want %v", s.Labels, wantLabels)
			}
			if !maps.Equal(s.Annotations, juicyRoute.Metadata.Annotations) {
				t.Errorf("annotations = %v, want %v", s.Annotations, juicyRoute.Metadata.Annotations)
			}
			if s.Spec.Type != corev1.ServiceTypeExternalName || s.Spec.ExternalName != "hello.default.svc.cluster.local" ||
				len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].Name != "http2" {
				t.Errorf("spec = %+v", s.Spec)
			}
			c := k8smeta.GetControllerOf(s)
			if c == nil || c.Kind != "Route" || c.APIVersion != v1.APIVersion || c.Name != "hello" || string(c.UID) != juicyRoute.Metadata.UID {
				t.Errorf("controller = %+v", c)
			}
			if s.UID == "" || !s.CreationTimestamp.Time.Equal(testNow) || s.Kind != "Service" || s.APIVersion != "v1" {
				t.Errorf("meta = %+v %+v", s.ObjectMeta, s.TypeMeta)
			}
			wantConds(t, "route", f.route(t, "hello").Status.Status, "AllTrafficAssigned=True IngressReady=True Ready=True")
		},
	}, {
		name: "a label and annotation removed from the route stay on its service",
		objs: []any{hello, readyCfg, readyRev, plainRoute, k8sSvcFor(juicyRoute)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			s, _ := f.k8sService(t, "hello")
			if s.Labels["juicy"] != "yes" || s.Annotations["juicy"] != "yes" {
				t.Errorf("juicy went: labels %v annotations %v", s.Labels, s.Annotations)
			}
			// What the Route still has wins.
			if s.Annotations["serving.knative.dev/lastModifier"] != "carol" || s.UID != "uid-k8s-hello" {
				t.Errorf("annotations %v uid %s", s.Annotations, s.UID)
			}
		},
	}, {
		name: "a label added to the route reaches its service",
		objs: []any{hello, readyCfg, readyRev, routeFor(hello, withRouteLabels("color", "blue")), k8sSvcFor(routeFor(hello))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			if s, _ := f.k8sService(t, "hello"); s.Labels["color"] != "blue" || s.Labels[v1.RouteLabelKey] != "hello" {
				t.Errorf("labels %v", s.Labels)
			}
		},
	}, {
		name: "a service with another spec gets the route's",
		objs: []any{hello, readyCfg, readyRev, routeFor(hello), k8sSvcFor(routeFor(hello), func(s *corev1.Service) {
			s.Spec.ExternalName = "elsewhere.example.com"
		})},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			if s, _ := f.k8sService(t, "hello"); s.Spec.ExternalName != "hello.default.svc.cluster.local" {
				t.Errorf("externalName %q", s.Spec.ExternalName)
			}
		},
	}, {
		name: "the service of a deleted route goes",
		objs: []any{k8sSvcFor(routeFor(hello))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			f.noK8sService(t, "hello")
		},
	}, {
		name: "a service of an earlier route of the same name is replaced",
		objs: []any{hello, readyCfg, readyRev, routeFor(hello, withRouteAnnotations("a", "new")),
			k8sSvcFor(routeFor(hello, func(r *v1.Route) { r.Metadata.UID = "uid-route-earlier" }), withK8sLabels("old", "yes"))},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			s, _ := f.k8sService(t, "hello")
			if c := k8smeta.GetControllerOf(s); c == nil || string(c.UID) != "uid-route-hello" {
				t.Errorf("controller = %+v", c)
			}
			if s.UID == "uid-k8s-hello" || s.Labels["old"] != "" || s.Annotations["a"] != "new" {
				t.Errorf("the earlier route's service was kept: %+v", s.ObjectMeta)
			}
		},
	}, {
		name: "a service no route controls is left alone and the route is not ready",
		objs: []any{hello, readyCfg, readyRev, routeFor(hello), k8sSvcFor(routeFor(hello), func(s *corev1.Service) {
			s.OwnerReferences = nil
			s.Spec.ExternalName = "mine.example.com"
		})},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			if s, _ := f.k8sService(t, "hello"); s.Spec.ExternalName != "mine.example.com" || len(s.OwnerReferences) != 0 {
				t.Errorf("the service was changed: %+v", s)
			}
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=True IngressReady=False/NotOwned Ready=False/NotOwned")
			if m := r.Status.GetCondition("Ready").Message; m != `There is an existing placeholder Service "hello" that we do not own.` {
				t.Errorf("message %q", m)
			}
		},
	}, {
		name: "a service no route controls stays when its name's route is deleted",
		objs: []any{k8sSvcFor(routeFor(hello), func(s *corev1.Service) { s.OwnerReferences = nil })},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			f.k8sService(t, "hello")
		},
	}}, func(f *fixture, name string) ([]workKey, error) { return f.l.reconcileRoute(f.ctx, "default", name) })
}

// A reconcile that changes nothing writes nothing.
func TestK8sServiceUnchangedIsNotWritten(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello, withCfgReady("hello-00001"))
	f := newFixture(t, []any{hello, cfg, revFor(cfg, withRevReady), routeFor(hello, withRouteLabels("juicy", "yes"))})
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	_, rev := f.k8sService(t, "hello")
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	if _, again := f.k8sService(t, "hello"); again != rev {
		t.Fatalf("an unchanged service was written again: revision %d, then %d", rev, again)
	}
}

// An update is a compare-and-swap: a record changed behind the cache is a
// conflict, retried by the queue.
func TestK8sServiceUpdateConflicts(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello, withCfgReady("hello-00001"))
	f := newFixture(t, []any{hello, cfg, revFor(cfg, withRevReady), routeFor(hello, withRouteLabels("color", "blue")),
		k8sSvcFor(routeFor(hello))})
	// A write the cache has not heard of yet.
	f.seed(t, k8sSvcFor(routeFor(hello), withK8sAnnotations("x", "y")))
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); !errdefs.IsConflict(err) {
		t.Fatalf("err = %v, want a conflict", err)
	}
}

// The Service of a Route deleted because its owner is gone goes too: the
// Route's deletion queues the Route again, which finds it gone.
func TestK8sServiceOfAnOrphanedRouteGoes(t *testing.T) {
	hello := svc("hello")
	route := routeFor(hello)
	f := newFixture(t, []any{route, k8sSvcFor(route)})
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	if got := f.queued(); !slices.Contains(got, "route/default/hello") {
		t.Fatalf("deleting the route queued %v", got)
	}
	f.k8sService(t, "hello")
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	f.noK8sService(t, "hello")
}

// A Service record's change, or one listed at the start of a term, queues
// the Route of its name, so a record whose Route went while no controller
// led is collected.
func TestK8sServiceEventsQueueTheRoute(t *testing.T) {
	f := newFixture(t, nil)
	f.seed(t, k8sSvcFor(routeFor(svc("hello"))))
	kvs, rev, err := f.st.List(f.ctx, store.ServicesPrefix)
	if err != nil {
		t.Fatal(err)
	}
	f.l.k8sSvcs.Apply(store.Feed{Reset: true, Puts: kvs, Rev: rev})
	if got, want := f.queued(), []string{"route/default/hello"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	if _, err := f.l.reconcileRoute(f.ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	f.noK8sService(t, "hello")
}
