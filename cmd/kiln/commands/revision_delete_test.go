package commands_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func TestRevisionDeleteAndPrune(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(name, svc string) {
		r := &v1.Revision{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default",
			Labels: map[string]string{v1.ServiceLabelKey: svc, v1.ConfigurationLabelKey: svc}}}
		r.Spec.Containers = []v1.Container{{Image: "img"}}
		if _, err := e.reg.Revisions().Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a-00001", "a-00002", "a-00003", "b-00001", "b-00002", "c-00001"} {
		mk(n, n[:1])
	}
	route := &v1.Route{Metadata: metav1.ObjectMeta{Name: "a", Namespace: "default"}}
	pct := int64(100)
	route.Spec.Traffic = []v1.TrafficTarget{{RevisionName: "a-00002", Percent: &pct}}
	if _, err := e.reg.Routes().Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	cfg := &v1.Configuration{Metadata: metav1.ObjectMeta{Name: "a", Namespace: "default"}}
	cfg.Spec.Template.Spec.Containers = []v1.Container{{Image: "img"}}
	got, err := e.reg.Configurations().Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got.Status.LatestReadyRevisionName, got.Status.LatestCreatedRevisionName = "a-00003", "a-00003"
	if _, err := e.reg.Configurations().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Services().Create(ctx, &v1.Service{Metadata: metav1.ObjectMeta{Name: "a", Namespace: "default"},
		Spec: v1.ServiceSpec{ConfigurationSpec: v1.ConfigurationSpec{Template: cfg.Spec.Template}}}); err != nil {
		t.Fatal(err)
	}
	// The fake controller stamps a-00001 for the Service before it first
	// writes its status: wait for that, or its create could land after
	// the prune below deleted a-00001 and bring it back.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := e.reg.Services().Get(ctx, "default", "a")
		if err == nil && s.Status.ObservedGeneration >= 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the fake controller never observed service a: %v", err)
		}
	}

	if out := e.mustRun("revision", "delete", "c-00001", "b-00002"); out != "Revision 'c-00001' deleted in namespace 'default'.\nRevision 'b-00002' deleted in namespace 'default'.\n" {
		t.Fatalf("delete: %q", out)
	}
	if _, stderr, code := e.run("revision", "delete", "nope"); code == 0 || !strings.Contains(stderr, "revision 'nope' not found in namespace 'default'") {
		t.Fatalf("delete missing: %d %q", code, stderr)
	}
	// a-00002 is routed and a-00003 is latest: only a-00001 goes.
	if out := e.mustRun("revision", "delete", "--prune", "a"); out != "Revision 'a-00001' deleted in namespace 'default'.\n" {
		t.Fatalf("prune: %q", out)
	}
	if out := e.mustRun("revision", "delete", "--prune", "a"); out != "No unreferenced revisions found.\n" {
		t.Fatalf("prune again: %q", out)
	}
	if out := e.mustRun("revision", "delete", "--prune-all"); out != "Revision 'b-00001' deleted in namespace 'default'.\n" {
		t.Fatalf("prune-all: %q", out)
	}
	if _, stderr, code := e.run("revision", "delete", "--prune", "a", "x"); code == 0 || !strings.Contains(stderr, "takes no revision names") {
		t.Fatalf("prune with names: %q", stderr)
	}
}
