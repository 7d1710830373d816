package autoscaler

import (
	"maps"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func rev(name string, annotations ...string) *v1.Revision {
	r := &v1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}}}
	for i := 0; i+1 < len(annotations); i += 2 {
		r.Metadata.Annotations[annotations[i]] = annotations[i+1]
	}
	return r
}

func route(ns string, revisions ...string) *v1.Route {
	rt := &v1.Route{Metadata: metav1.ObjectMeta{Namespace: ns, Name: "hello"}}
	for _, n := range revisions {
		rt.Status.Traffic = append(rt.Status.Traffic, v1.TrafficTarget{RevisionName: n})
	}
	return rt
}

func cfg(ns, latestCreated string) *v1.Configuration {
	c := &v1.Configuration{Metadata: metav1.ObjectMeta{Namespace: ns, Name: "hello"}}
	c.Status.LatestCreatedRevisionName = latestCreated
	return c
}

func TestDecide(t *testing.T) {
	const minS, maxS, initS = v1.AutoscalingMinScaleAnnotation, v1.AutoscalingMaxScaleAnnotation, v1.AutoscalingInitialScale
	tests := []struct {
		name   string
		revs   []*v1.Revision
		routes []*v1.Route
		cfgs   []*v1.Configuration
		want   map[RevisionKey]int
	}{
		{name: "routed revision starts at 1", revs: []*v1.Revision{rev("a")}, routes: []*v1.Route{route("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 1}},
		{name: "latest created runs before traffic moves", revs: []*v1.Revision{rev("a"), rev("b")},
			routes: []*v1.Route{route("default", "a")}, cfgs: []*v1.Configuration{cfg("default", "b")},
			want: map[RevisionKey]int{{"default", "a"}: 1, {"default", "b"}: 1}},
		{name: "unrouted old revision stops, min-scale ignored", revs: []*v1.Revision{rev("a", minS, "3"), rev("b")},
			routes: []*v1.Route{route("default", "b")}, cfgs: []*v1.Configuration{cfg("default", "b")},
			want: map[RevisionKey]int{{"default", "a"}: 0, {"default", "b"}: 1}},
		{name: "min-scale raises", revs: []*v1.Revision{rev("a", minS, "3")}, routes: []*v1.Route{route("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 3}},
		{name: "max-scale caps", revs: []*v1.Revision{rev("a", minS, "5", maxS, "2")}, routes: []*v1.Route{route("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 2}},
		{name: "max-scale 0 means unlimited", revs: []*v1.Revision{rev("a", minS, "4", maxS, "0")}, routes: []*v1.Route{route("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 4}},
		{name: "initial-scale above 1", revs: []*v1.Revision{rev("a", initS, "2")}, cfgs: []*v1.Configuration{cfg("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 2}},
		{name: "initial-scale 0 is the default", revs: []*v1.Revision{rev("a", initS, "0")}, cfgs: []*v1.Configuration{cfg("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 1}},
		{name: "bad annotation ignored", revs: []*v1.Revision{rev("a", minS, "lots")}, routes: []*v1.Route{route("default", "a")},
			want: map[RevisionKey]int{{"default", "a"}: 1}},
		{name: "routes are per namespace", revs: []*v1.Revision{rev("a")}, routes: []*v1.Route{route("other", "a")},
			cfgs: []*v1.Configuration{cfg("other", "a")}, want: map[RevisionKey]int{{"default", "a"}: 0}},
		{name: "nothing", want: map[RevisionKey]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.revs, tc.routes, tc.cfgs); !maps.Equal(got, tc.want) {
				t.Errorf("Decide = %v, want %v", got, tc.want)
			}
		})
	}
}
