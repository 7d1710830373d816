package commands_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func TestRouteListDescribeLikeKn(t *testing.T) {
	e := newEnv(t)
	if out := e.mustRun("route", "list"); out != "No routes found.\n" {
		t.Fatalf("empty route list: %q", out)
	}
	p, latest := int64(100), true
	for _, ns := range []string{"default", "other"} {
		r := &v1.Route{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: ns,
			Labels:      map[string]string{v1.ServiceLabelKey: "hello", "team": "payments"},
			Annotations: map[string]string{"example.com/owner": "alice"}}}
		r.Status.URL = "http://hello." + ns + ".example.com"
		r.Status.MarkCondition("Ready", metav1.ConditionTrue, "", "", time.Now())
		r.Status.Traffic = []v1.TrafficTarget{{RevisionName: "hello-00001", LatestRevision: &latest, Percent: &p}}
		if _, err := e.reg.Routes().Create(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args []string
		want []string // lines, whitespace collapsed
	}{
		{[]string{"route", "list"}, []string{"NAME URL READY", "hello http://hello.default.example.com True"}},
		{[]string{"route", "list", "hello"}, []string{"NAME URL READY", "hello http://hello.default.example.com True"}},
		{[]string{"route", "list", "nope"}, []string{"No routes found."}},
		{[]string{"route", "list", "--no-headers"}, []string{"hello http://hello.default.example.com True"}},
		{[]string{"route", "list", "-A"}, []string{"NAMESPACE NAME URL READY", "default hello http://hello.default.example.com True", "other hello http://hello.other.example.com True"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := e.mustRun(tc.args...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for i := range lines {
				lines[i] = strings.Join(strings.Fields(lines[i]), " ")
			}
			if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", out, strings.Join(tc.want, "\n"))
			}
		})
	}
	if _, errOut, code := e.run("route", "list", "a", "b"); code == 0 || !strings.Contains(errOut, "accepts only one additional argument") {
		t.Errorf("two names: exit %d, %q", code, errOut)
	}
	// Seed 4.5.2, step 2 on the Knative Route: labels and annotations are there.
	out := e.mustRun("route", "describe", "hello", "-o", "yaml")
	for _, want := range []string{"team: payments", "example.com/owner: alice"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe -o yaml lacks %q:\n%s", want, out)
		}
	}
	out = e.mustRun("route", "describe", "hello")
	for _, want := range []string{"Labels:", "team=payments", "Annotations:", "example.com/owner=alice", "Service:", "Traffic Targets:", "100%  @latest (hello-00001)", "Conditions:"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
}

func TestServiceExportWithRevisions(t *testing.T) {
	e := newEnv(t)
	e.mustRun("service", "create", "hello", "--image", "img:1", "--label", "team=payments")
	if _, errOut, code := e.run("service", "export", "hello", "--with-revisions", "-o", "yaml"); code == 0 ||
		!strings.Contains(errOut, "requires a mode, please specify one of replay|export") {
		t.Fatalf("no mode: exit %d %q", code, errOut)
	}
	out := e.mustRun("service", "export", "hello", "--with-revisions", "--mode", "replay", "-o", "yaml")
	for _, want := range []string{"apiVersion: v1", "kind: List", "kind: Service", "image: img:1", "team: payments"} {
		if !strings.Contains(out, want) {
			t.Errorf("replay lacks %q:\n%s", want, out)
		}
	}
	out = e.mustRun("service", "export", "hello", "--with-revisions", "--mode", "export", "-o", "json")
	for _, want := range []string{`"apiVersion": "client.knative.dev/v1alpha1"`, `"kind": "Export"`, `"image": "img:1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("export lacks %q:\n%s", want, out)
		}
	}
}
