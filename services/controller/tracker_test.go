package controller

import (
	"slices"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func trackedRoute(name string, spec []v1.TrafficTarget, status []v1.TrafficTarget) *v1.Route {
	r := &v1.Route{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	r.Spec.Traffic = spec
	r.Status.Traffic = status
	return r
}

func TestTracker(t *testing.T) {
	cfgRef := func(name string) ref { return ref{kConfig, "default", name} }
	revRef := func(name string) ref { return ref{kRevision, "default", name} }
	for _, tc := range []struct {
		name   string
		routes []*v1.Route // tracked in order
		drop   []string    // untracked afterwards
		want   map[ref][]string
	}{{
		name:   "configurationName and the revision it resolved to",
		routes: []*v1.Route{trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, []v1.TrafficTarget{{RevisionName: "hello-00001"}})},
		want:   map[ref][]string{cfgRef("hello"): {"a"}, revRef("hello-00001"): {"a"}, revRef("hello-00002"): nil},
	}, {
		name: "revisionName pins",
		routes: []*v1.Route{
			trackedRoute("a", []v1.TrafficTarget{{RevisionName: "hello-00001"}}, nil),
			trackedRoute("b", []v1.TrafficTarget{{RevisionName: "hello-00001"}, {ConfigurationName: "other"}}, nil),
		},
		want: map[ref][]string{revRef("hello-00001"): {"a", "b"}, cfgRef("other"): {"b"}, cfgRef("hello"): nil},
	}, {
		name: "a route tracked again drops what it no longer references",
		routes: []*v1.Route{
			trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, []v1.TrafficTarget{{RevisionName: "hello-00001"}}),
			trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, []v1.TrafficTarget{{RevisionName: "hello-00002"}}),
		},
		want: map[ref][]string{cfgRef("hello"): {"a"}, revRef("hello-00001"): nil, revRef("hello-00002"): {"a"}},
	}, {
		name: "untracked routes are gone",
		routes: []*v1.Route{
			trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, nil),
			trackedRoute("b", []v1.TrafficTarget{{ConfigurationName: "hello"}}, nil),
		},
		drop: []string{"a"},
		want: map[ref][]string{cfgRef("hello"): {"b"}},
	}, {
		name:   "namespaces are apart",
		routes: []*v1.Route{trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, nil)},
		want:   map[ref][]string{{kConfig, "other", "hello"}: nil},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker()
			for _, r := range tc.routes {
				tr.Track(r)
			}
			for _, name := range tc.drop {
				tr.Untrack("default", name)
			}
			for r, want := range tc.want {
				if got := tr.RoutesFor(r); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("RoutesFor(%v) = %v, want %v", r, got, want)
				}
			}
		})
	}
	t.Run("nothing left after every route is untracked", func(t *testing.T) {
		tr := newTracker()
		tr.Track(trackedRoute("a", []v1.TrafficTarget{{ConfigurationName: "hello"}}, []v1.TrafficTarget{{RevisionName: "hello-00001"}}))
		tr.Untrack("default", "a")
		if len(tr.byRef) != 0 || len(tr.byRoute) != 0 {
			t.Fatalf("tracker keeps %v / %v", tr.byRef, tr.byRoute)
		}
	})
}
