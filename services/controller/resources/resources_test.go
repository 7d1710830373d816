package resources

import (
	"reflect"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func ptr[T any](v T) *T { return &v }

func svc(name string, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-1", Generation: 3}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withTraffic(ts ...v1.TrafficTarget) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Traffic = ts }
}

func withLabels(l map[string]string) func(*v1.Service) {
	return func(s *v1.Service) { s.Metadata.Labels = l }
}

func withAnnotations(a map[string]string) func(*v1.Service) {
	return func(s *v1.Service) { s.Metadata.Annotations = a }
}

func owner(kind, name, uid string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: v1.APIVersion, Kind: kind, Name: name, UID: uid, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}
}

func TestMakeConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name            string
		in              *v1.Service
		wantLabels      map[string]string
		wantAnnotations map[string]string
	}{
		{"plain", svc("hello"), map[string]string{v1.ServiceLabelKey: "hello"}, nil},
		{"labels and annotations propagate", svc("hello", withLabels(map[string]string{"team": "a"}), withAnnotations(map[string]string{"note": "x"})),
			map[string]string{"team": "a", v1.ServiceLabelKey: "hello"}, map[string]string{"note": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MakeConfiguration(tc.in)
			if got.Metadata.Name != "hello" || got.Metadata.Namespace != "default" || got.Kind != v1.KindConfiguration || got.APIVersion != v1.APIVersion {
				t.Fatalf("identity = %+v %+v", got.TypeMeta, got.Metadata)
			}
			if !reflect.DeepEqual(got.Metadata.Labels, tc.wantLabels) || !reflect.DeepEqual(got.Metadata.Annotations, tc.wantAnnotations) {
				t.Fatalf("labels %v annotations %v", got.Metadata.Labels, got.Metadata.Annotations)
			}
			if !reflect.DeepEqual(got.Metadata.OwnerReferences, owner(v1.KindService, "hello", "uid-1")) {
				t.Fatalf("owner = %+v", got.Metadata.OwnerReferences)
			}
			if !reflect.DeepEqual(got.Spec.Template, tc.in.Spec.Template) {
				t.Fatalf("template = %+v", got.Spec.Template)
			}
			got.Metadata.Labels["mutated"] = "yes"
			if tc.in.Metadata.Labels["mutated"] != "" {
				t.Fatal("the configuration shares the service's label map")
			}
		})
	}
}

func TestMakeRoute(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *v1.Service
		want []v1.TrafficTarget
	}{
		{"no traffic: all to the latest revision", svc("hello"),
			[]v1.TrafficTarget{{ConfigurationName: "hello", LatestRevision: ptr(true), Percent: ptr[int64](100)}}},
		{"a split keeps pinned revisions and names the configuration", svc("hello", withTraffic(
			v1.TrafficTarget{Percent: ptr[int64](70), Tag: "current"},
			v1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr[int64](30), URL: "http://stale"},
		)), []v1.TrafficTarget{
			{ConfigurationName: "hello", LatestRevision: ptr(true), Percent: ptr[int64](70), Tag: "current"},
			{RevisionName: "hello-00001", Percent: ptr[int64](30)},
		}},
		{"latestRevision false on a configuration target is kept", svc("hello", withTraffic(
			v1.TrafficTarget{LatestRevision: ptr(false), Percent: ptr[int64](100)},
		)), []v1.TrafficTarget{{ConfigurationName: "hello", LatestRevision: ptr(false), Percent: ptr[int64](100)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MakeRoute(tc.in)
			if !reflect.DeepEqual(got.Spec.Traffic, tc.want) {
				t.Fatalf("traffic = %+v, want %+v", got.Spec.Traffic, tc.want)
			}
			if got.Metadata.Labels[v1.ServiceLabelKey] != "hello" || got.Kind != v1.KindRoute ||
				!reflect.DeepEqual(got.Metadata.OwnerReferences, owner(v1.KindService, "hello", "uid-1")) {
				t.Fatalf("metadata = %+v", got.Metadata)
			}
		})
	}
}

func TestRevisionName(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, template string
		generation          int64
		want                string
	}{
		{"generation, five digits", "hello", "", 12, "hello-00012"},
		{"wider generations grow", "hello", "", 123456, "hello-123456"},
		{"the template's name wins", "hello", "hello-blue", 12, "hello-blue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &v1.Configuration{Metadata: metav1.ObjectMeta{Name: tc.cfg, Generation: tc.generation}}
			c.Spec.Template.Metadata.Name = tc.template
			if got := RevisionName(c); got != tc.want {
				t.Fatalf("RevisionName = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMakeRevision(t *testing.T) {
	c := &v1.Configuration{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default", UID: "uid-cfg", Generation: 2,
		Labels: map[string]string{v1.ServiceLabelKey: "hello", "team": "not-propagated"}}}
	c.Spec.Template.Metadata.Labels = map[string]string{"app": "web"}
	c.Spec.Template.Metadata.Annotations = map[string]string{"autoscaling.knative.dev/target": "10"}
	c.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:2"}}
	got := MakeRevision(c)
	wantLabels := map[string]string{"app": "web", v1.ConfigurationLabelKey: "hello", v1.ConfigurationGenerationLabel: "2", v1.ServiceLabelKey: "hello"}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"name", got.Metadata.Name, "hello-00002"},
		{"namespace", got.Metadata.Namespace, "default"},
		{"kind", got.Kind, v1.KindRevision},
		{"labels", got.Metadata.Labels, wantLabels},
		{"annotations", got.Metadata.Annotations, map[string]string{"autoscaling.knative.dev/target": "10"}},
		{"owner", got.Metadata.OwnerReferences, owner(v1.KindConfiguration, "hello", "uid-cfg")},
		{"spec", got.Spec, c.Spec.Template.Spec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %+v, want %+v", tc.got, tc.want)
			}
		})
	}
}

// resolver is a fake Resolver: configurations → latest ready revision,
// revisions → Ready status ("True", "False", "Unknown"); configurations in
// failed are Ready=False.
type resolver struct {
	latest map[string]string
	revs   map[string]string
	failed map[string]bool
}

func (r resolver) LatestReady(cfg string) (string, bool) { return r.latest[cfg], r.failed[cfg] }
func (r resolver) RevisionReady(name string) (bool, bool, bool) {
	st, ok := r.revs[name]
	return ok, st == "True", st == "False"
}

func TestResolveTraffic(t *testing.T) {
	res := resolver{
		latest: map[string]string{"hello": "hello-00002", "broken-but-served": "broken-but-served-00001"},
		revs:   map[string]string{"hello-00001": "True", "hello-00002": "True", "hello-00003": "Unknown", "hello-00004": "False"},
		failed: map[string]bool{"broken": true, "broken-but-served": true},
	}
	for _, tc := range []struct {
		name    string
		traffic []v1.TrafficTarget
		dc      DomainConfig
		want    []v1.TrafficTarget
		reason  string
		message string
		failed  bool
	}{{
		name:    "configuration to its latest ready revision",
		traffic: []v1.TrafficTarget{{ConfigurationName: "hello", LatestRevision: ptr(true), Percent: ptr[int64](100)}},
		want:    []v1.TrafficTarget{{RevisionName: "hello-00002", LatestRevision: ptr(true), Percent: ptr[int64](100)}},
	}, {
		name: "pinned revisions are not latest; tags get URLs",
		traffic: []v1.TrafficTarget{
			{ConfigurationName: "hello", LatestRevision: ptr(true), Percent: ptr[int64](90)},
			{RevisionName: "hello-00001", Percent: ptr[int64](10), Tag: "old"},
		},
		want: []v1.TrafficTarget{
			{RevisionName: "hello-00002", LatestRevision: ptr(true), Percent: ptr[int64](90)},
			{RevisionName: "hello-00001", LatestRevision: ptr(false), Percent: ptr[int64](10), Tag: "old", URL: "http://old-r.default.example.com"},
		},
	}, {
		name:    "tag URLs follow the tag template and scheme",
		traffic: []v1.TrafficTarget{{RevisionName: "hello-00001", Tag: "blue", Percent: ptr[int64](100)}},
		dc:      DomainConfig{Domain: "kiln.test", TagTemplate: "{{.Name}}--{{.Tag}}", Scheme: "https"},
		want:    []v1.TrafficTarget{{RevisionName: "hello-00001", LatestRevision: ptr(false), Percent: ptr[int64](100), Tag: "blue", URL: "https://r--blue.default.kiln.test"}},
	}, {
		name:    "a cluster-local route's tags are cluster-local",
		traffic: []v1.TrafficTarget{{RevisionName: "hello-00001", Tag: "blue", Percent: ptr[int64](100)}},
		dc:      ForVisibility(DomainConfig{Scheme: "https"}, map[string]string{v1.VisibilityLabelKey: v1.VisibilityClusterLocal}),
		want:    []v1.TrafficTarget{{RevisionName: "hello-00001", LatestRevision: ptr(false), Percent: ptr[int64](100), Tag: "blue", URL: "http://blue-r.default.svc.cluster.local"}},
	}, {
		name:    "a missing revision fails",
		traffic: []v1.TrafficTarget{{RevisionName: "nope", Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
		message: `Revision "nope" referenced in traffic not found.`,
		failed:  true,
	}, {
		name:    "a revision not ready yet is waited for",
		traffic: []v1.TrafficTarget{{RevisionName: "hello-00003", Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
		message: `Revision "hello-00003" is not yet ready.`,
	}, {
		name:    "a failed revision fails",
		traffic: []v1.TrafficTarget{{RevisionName: "hello-00004", Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
		message: `Revision "hello-00004" failed to become ready.`,
		failed:  true,
	}, {
		name:    "a configuration without a ready revision is waited for",
		traffic: []v1.TrafficTarget{{ConfigurationName: "other", Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
		message: `Configuration "other" is waiting for a Revision to become ready.`,
	}, {
		name:    "a failed configuration without a ready revision fails",
		traffic: []v1.TrafficTarget{{ConfigurationName: "broken", Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
		message: `Configuration "broken" does not have any ready Revision.`,
		failed:  true,
	}, {
		name:    "a failed configuration still serves its latest ready revision",
		traffic: []v1.TrafficTarget{{ConfigurationName: "broken-but-served", LatestRevision: ptr(true), Percent: ptr[int64](100)}},
		want:    []v1.TrafficTarget{{RevisionName: "broken-but-served-00001", LatestRevision: ptr(true), Percent: ptr[int64](100)}},
	}, {
		name:    "a target naming nothing",
		traffic: []v1.TrafficTarget{{Percent: ptr[int64](100)}},
		reason:  "RevisionMissing",
	}, {
		name:    "a broken tag template",
		traffic: []v1.TrafficTarget{{RevisionName: "hello-00001", Tag: "blue", Percent: ptr[int64](100)}},
		dc:      DomainConfig{TagTemplate: "{{.Nope}}"},
		reason:  "DomainTemplateError",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &v1.Route{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "default"}}
			r.Spec.Traffic = tc.traffic
			got, err := ResolveTraffic(r, tc.dc.WithDefaults(), res)
			if tc.reason != "" {
				if err == nil || err.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %s", err, tc.reason)
				}
				if tc.message != "" && (err.Message != tc.message || err.Failed != tc.failed) {
					t.Fatalf("err = %q (failed %v), want %q (failed %v)", err.Message, err.Failed, tc.message, tc.failed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("traffic = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDomainConfigHost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dc        DomainConfig
		route, ns string
		tag       string
		want      string
		err       bool
	}{
		{"defaults", DomainConfig{}, "hello", "default", "", "hello.default.example.com", false},
		{"domain", DomainConfig{Domain: "kiln.test"}, "hello", "prod", "", "hello.prod.kiln.test", false},
		{"domain template", DomainConfig{Domain: "kiln.test", DomainTemplate: "{{.Name}}-{{.Namespace}}.{{.Domain}}"}, "hello", "prod", "", "hello-prod.kiln.test", false},
		{"tag", DomainConfig{}, "hello", "default", "blue", "blue-hello.default.example.com", false},
		{"tag template", DomainConfig{TagTemplate: "{{.Name}}-{{.Tag}}"}, "hello", "default", "blue", "hello-blue.default.example.com", false},
		{"lower case", DomainConfig{Domain: "Kiln.TEST"}, "hello", "default", "", "hello.default.kiln.test", false},
		{"cluster-local", DomainConfig{ClusterLocal: true, Domain: "kiln.test"}, "hello", "default", "", "hello.default.svc.cluster.local", false},
		{"cluster-local tag", DomainConfig{ClusterLocal: true}, "hello", "default", "blue", "blue-hello.default.svc.cluster.local", false},
		{"unknown template key", DomainConfig{DomainTemplate: "{{.Nope}}"}, "hello", "default", "", "", true},
		{"unparsable template", DomainConfig{DomainTemplate: "{{"}, "hello", "default", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.dc.Host(tc.route, tc.ns, tc.tag)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("Host = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestVisibility(t *testing.T) {
	external := DomainConfig{Domain: "kiln.test", Scheme: "https"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		local  bool
		want   DomainConfig
	}{
		{"no label", nil, false, external},
		{"cluster-local", map[string]string{v1.VisibilityLabelKey: "cluster-local"}, true, DomainConfig{Domain: "kiln.test", Scheme: "http", ClusterLocal: true}},
		{"case-insensitive", map[string]string{v1.VisibilityLabelKey: "Cluster-Local"}, true, DomainConfig{Domain: "kiln.test", Scheme: "http", ClusterLocal: true}},
		{"another value", map[string]string{v1.VisibilityLabelKey: "public"}, false, external},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsClusterLocal(tc.labels); got != tc.local {
				t.Fatalf("IsClusterLocal = %v", got)
			}
			if got := ForVisibility(external, tc.labels); got != tc.want {
				t.Fatalf("ForVisibility = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	got := DomainConfig{}.WithDefaults()
	want := DomainConfig{Domain: "example.com", DomainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", TagTemplate: "{{.Tag}}-{{.Name}}", Scheme: "http"}
	if got != want {
		t.Fatalf("WithDefaults = %+v", got)
	}
	set := DomainConfig{Domain: "a", DomainTemplate: "b", TagTemplate: "c", Scheme: "d"}
	if set.WithDefaults() != set {
		t.Fatal("WithDefaults overrode set fields")
	}
}
