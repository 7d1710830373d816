package route

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func TestWriteDescription(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	created := metav1.Time{Time: now.Add(-5 * time.Minute)}
	p80, p20, p0, latest := int64(80), int64(20), int64(0), true
	r := &v1.Route{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default", CreationTimestamp: &created,
		Labels:          map[string]string{v1.ServiceLabelKey: "hello", "team": "payments"},
		Annotations:     map[string]string{"serving.knative.dev/creator": "alice", "example.com/owner": "alice"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1.APIVersion, Kind: v1.KindService, Name: "hello-svc"}}}}
	r.Status.URL = "http://hello.default.example.com"
	r.Status.Traffic = []v1.TrafficTarget{
		{RevisionName: "hello-00002", LatestRevision: &latest, Percent: &p80},
		{RevisionName: "hello-00001", Percent: &p20},
		{RevisionName: "hello-00001", Tag: "old", Percent: &p0, URL: "http://old-hello.default.example.com"},
	}
	r.Status.MarkCondition("Ready", metav1.ConditionTrue, "", "", created.Time)

	tests := []struct {
		name    string
		verbose bool
		want    []string
		not     []string
	}{
		{name: "compact", want: []string{
			"Name:        hello", "Namespace:   default", "Labels:      team=payments", "Annotations: example.com/owner=alice",
			"Age:         5m", "URL:         http://hello.default.example.com", "Service:     hello-svc",
			"Traffic Targets:", " 80%  @latest (hello-00002)\n   20%  hello-00001\n    0%  hello-00001 #old\n        URL:  http://old-hello",
			"URL:         http://old-hello.default.example.com", "Conditions:", "++", "Ready",
		}, not: []string{"serving.knative.dev/service", "creator"}},
		{name: "verbose", verbose: true, want: []string{
			"Labels:      serving.knative.dev/service=hello", "team=payments", "serving.knative.dev/creator=alice",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			writeDescription(&out, r, tc.verbose, now)
			got := out.String()
			flat := strings.Join(strings.Fields(got), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("lacks %q", w)
				}
			}
			const traffic = "Traffic Targets:\n   80%  @latest (hello-00002)\n   20%  hello-00001\n    0%  hello-00001 #old\n        URL:  http://old-hello.default.example.com\n"
			if !strings.Contains(got, traffic) {
				t.Errorf("traffic block is not kn's:\n%s", traffic)
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("has %q", n)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", got)
			}
		})
	}
}

func TestWriteMapTruncates(t *testing.T) {
	var out bytes.Buffer
	writeMap(&out, "Labels:", map[string]string{"a": strings.Repeat("x", 60), "b": strings.Repeat("y", 60)}, false)
	line := strings.TrimSpace(out.String())
	if !strings.HasSuffix(line, " ...") || len(line) > truncateAt+len("Labels:")+1 {
		t.Fatalf("not truncated like kn: %q", line)
	}
}
