package autoscaler_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/errdefs"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/autoscaler"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scaleOf returns the desired scale and mod revision of ns/name, or -1.
func scaleOf(t *testing.T, st store.Store, name string) (int, int64) {
	t.Helper()
	kv, err := st.Get(context.Background(), store.ScaleKey("default", name))
	if errors.Is(err, errdefs.ErrNotFound) {
		return -1, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var s cluster.Scale
	if err := json.Unmarshal(kv.Value, &s); err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "default" || s.Revision != name {
		t.Fatalf("scale record names %s/%s", s.Namespace, s.Revision)
	}
	return s.Desired, kv.ModRevision
}

func waitScale(t *testing.T, st store.Store, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := scaleOf(t, st, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scale of %s = %d, want %d", name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLeadWritesScale(t *testing.T) {
	st := testenv.StartEtcd(t)
	reg := registry.New(st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mkrev := func(name string, ann map[string]string) {
		if _, err := reg.Revisions().Create(ctx, &v1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: ann},
			Spec: v1.RevisionSpec{Containers: []v1.Container{{Image: "img"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	mkrev("hello-00001", map[string]string{v1.AutoscalingMinScaleAnnotation: "2"})
	c, err := reg.Configurations().Create(ctx, &v1.Configuration{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Status.LatestCreatedRevisionName = "hello-00001"
	if c, err = reg.Configurations().Update(ctx, c); err != nil {
		t.Fatal(err)
	}

	a := autoscaler.New(st, reg, autoscaler.Options{}, quiet())
	done := make(chan error, 1)
	go func() {
		done <- election.Run(ctx, st.Client(), election.Config{Role: "autoscaler", Identity: "one", TTL: 2 * time.Second}, quiet(), a.Lead)
	}()
	waitScale(t, st, "hello-00001", 2)

	// A new revision becomes the latest created while the route still
	// sends traffic to the old one: both run.
	mkrev("hello-00002", nil)
	rt, err := reg.Routes().Create(ctx, &v1.Route{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	rt.Status.Traffic = []v1.TrafficTarget{{RevisionName: "hello-00001"}}
	if rt, err = reg.Routes().Update(ctx, rt); err != nil {
		t.Fatal(err)
	}
	c.Status.LatestCreatedRevisionName = "hello-00002"
	if _, err = reg.Configurations().Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitScale(t, st, "hello-00002", 1)
	waitScale(t, st, "hello-00001", 2)
	_, modBefore := scaleOf(t, st, "hello-00001")

	// Traffic moves: the old revision stops.
	rt.Status.Traffic = []v1.TrafficTarget{{RevisionName: "hello-00002"}}
	if _, err = reg.Routes().Update(ctx, rt); err != nil {
		t.Fatal(err)
	}
	waitScale(t, st, "hello-00001", 0)
	if _, mod := scaleOf(t, st, "hello-00001"); mod == modBefore {
		t.Fatal("scale changed without a write")
	}
	// Unchanged decisions are not rewritten.
	_, mod2 := scaleOf(t, st, "hello-00002")
	mkrev("unrelated-00001", nil)
	waitScale(t, st, "unrelated-00001", 0)
	if _, mod := scaleOf(t, st, "hello-00002"); mod != mod2 {
		t.Fatal("unchanged scale was rewritten")
	}

	// A deleted revision loses its scale key.
	if err := reg.Revisions().Delete(ctx, "default", "hello-00001"); err != nil {
		t.Fatal(err)
	}
	waitScale(t, st, "hello-00001", -1)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A deposed leader's Lead stops at its first write instead of writing.
func TestLeadStopsWhenNotLeader(t *testing.T) {
	st := testenv.StartEtcd(t)
	reg := registry.New(st)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Revisions().Create(ctx, &v1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "r"}}); err != nil {
		t.Fatal(err)
	}
	stale := &store.Fence{Key: store.ElectionKey("autoscaler") + "/gone", Rev: 1}
	err := autoscaler.New(st, reg, autoscaler.Options{}, quiet()).Lead(ctx, stale)
	if !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("Lead = %v, want ErrNotLeader", err)
	}
	if got, _ := scaleOf(t, st, "r"); got != -1 {
		t.Fatalf("deposed leader wrote scale %d", got)
	}
}
