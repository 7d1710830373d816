package service

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func exportFixture() (*v1.Service, []v1.Revision) {
	rev := func(name, gen, image string, ann map[string]string) v1.Revision {
		r := v1.Revision{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "u-" + name,
			Labels: map[string]string{v1.ServiceLabelKey: "hello", v1.ConfigurationGenerationLabel: gen}, Annotations: ann}}
		r.Spec.Containers = []v1.Container{{Image: image}}
		return r
	}
	p50, latest := int64(50), true
	svc := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default", UID: "u1", ResourceVersion: "7",
		Labels:      map[string]string{"team": "payments"},
		Annotations: map[string]string{"serving.knative.dev/creator": "alice", "example.com/owner": "alice"}}}
	svc.Spec.Template.Metadata.Name = "hello-v3"
	svc.Spec.Template.Spec.Containers = []v1.Container{{Image: "img:3"}}
	svc.Spec.Traffic = []v1.TrafficTarget{{RevisionName: "hello-v1", Percent: &p50}, {LatestRevision: &latest, Percent: &p50}}
	svc.Status.URL = "http://hello.default.example.com"
	revs := []v1.Revision{
		rev("hello-v3", "3", "img:3", nil),
		rev("hello-v1", "1", "img:1", map[string]string{"serving.knative.dev/routingStateModified": "x", "autoscaling.knative.dev/min-scale": "1"}),
		rev("hello-v2", "2", "img:2", nil), // not routed: left out
		rev("other-00001", "1", "img:9", nil),
	}
	revs[3].Metadata.Labels[v1.ServiceLabelKey] = "other"
	return svc, revs
}

func TestExportWithRevisions(t *testing.T) {
	svc, revs := exportFixture()
	tests := []struct {
		mode     string
		wantKind string
		// check inspects the decoded document.
		check func(t *testing.T, doc map[string]any)
	}{
		{mode: "replay", wantKind: "List", check: func(t *testing.T, doc map[string]any) {
			items := doc["items"].([]any)
			if len(items) != 2 {
				t.Fatalf("items %d, want 2 (routed hello-v1, then the service)", len(items))
			}
			first, last := items[0].(map[string]any), items[1].(map[string]any)
			if got := dig(first, "spec", "template", "metadata", "name"); got != "hello-v1" {
				t.Errorf("first item template name %v", got)
			}
			if got := dig(first, "spec", "template", "metadata", "annotations"); !equalJSON(got, map[string]any{"autoscaling.knative.dev/min-scale": "1"}) {
				t.Errorf("first item template annotations %v (routingStateModified must go)", got)
			}
			if dig(first, "spec", "traffic") != nil {
				t.Errorf("a replayed revision carries traffic")
			}
			if got := dig(last, "spec", "template", "metadata", "name"); got != "hello-v3" {
				t.Errorf("last item template name %v", got)
			}
			if tr, _ := dig(last, "spec", "traffic").([]any); len(tr) != 2 {
				t.Errorf("last item traffic %v", dig(last, "spec", "traffic"))
			}
		}},
		{mode: "export", wantKind: "Export", check: func(t *testing.T, doc map[string]any) {
			if doc["apiVersion"] != "client.knative.dev/v1alpha1" {
				t.Errorf("apiVersion %v", doc["apiVersion"])
			}
			revs, _ := dig(doc, "spec", "revisions").([]any)
			if len(revs) != 1 || dig(revs[0].(map[string]any), "metadata", "name") != "hello-v1" ||
				dig(revs[0].(map[string]any), "kind") != "Revision" {
				t.Fatalf("revisions %v", revs)
			}
			if got := dig(revs[0].(map[string]any), "metadata", "labels", v1.ServiceLabelKey); got != "hello" {
				t.Errorf("revision labels lost: %v", got)
			}
			if got := dig(doc, "spec", "service", "metadata", "name"); got != "hello" {
				t.Errorf("service name %v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				b, err := exportWithRevisions(svc, revs, tc.mode, asJSON)
				if err != nil {
					t.Fatal(err)
				}
				var doc map[string]any
				if asJSON {
					err = json.Unmarshal(b, &doc)
				} else {
					err = yaml.Unmarshal(b, &doc)
				}
				if err != nil {
					t.Fatalf("decode: %v\n%s", err, b)
				}
				if doc["kind"] != tc.wantKind {
					t.Fatalf("kind %v, want %s", doc["kind"], tc.wantKind)
				}
				tc.check(t, doc)
				// Server-set and who-did-it fields never travel.
				for _, not := range []string{"uid", "resourceVersion", "serving.knative.dev/creator", "namespace", "img:2", "img:9", "example.com/url"} {
					if strings.Contains(string(b), not) {
						t.Errorf("export (json=%v) has %q:\n%s", asJSON, not, b)
					}
				}
				for _, want := range []string{"team", "example.com/owner", "img:1", "img:3"} {
					if !strings.Contains(string(b), want) {
						t.Errorf("export (json=%v) lacks %q", asJSON, want)
					}
				}
			}
		})
	}
}

func TestExportWithRevisionsErrors(t *testing.T) {
	svc, revs := exportFixture()
	if _, err := exportWithRevisions(svc, revs, "", false); err == nil || err.Error() != errExportMode.Error() {
		t.Errorf("no mode: %v", err)
	}
	if _, err := exportWithRevisions(svc, revs[3:], "replay", false); err == nil || err.Error() != "no revisions found for the service hello" {
		t.Errorf("no revisions: %v", err)
	}
}

// A single revision exports without traffic, as kn does.
func TestExportSingleRevisionHasNoTraffic(t *testing.T) {
	svc, revs := exportFixture()
	b, err := exportWithRevisions(svc, revs[:1], "replay", true)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	items := doc["items"].([]any)
	if len(items) != 1 || dig(items[0].(map[string]any), "spec", "traffic") != nil {
		t.Fatalf("single revision replay: %s", b)
	}
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
