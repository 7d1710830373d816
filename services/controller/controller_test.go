package controller

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

func setup(t *testing.T) (context.Context, *memstore.Store, *registry.Registry) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	st := memstore.New()
	reg := registry.New(st)
	rev, _ := st.Put(ctx, store.ElectionKey("controller")+"/1", []byte("me"))
	c := New(st, Options{Domain: resources.DomainConfig{Domain: "example.com"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	startLead(t, ctx, c, &store.Fence{Key: store.ElectionKey("controller") + "/1", Rev: rev})
	return ctx, st, reg
}

// startLead runs c.Lead until the test ends and checks it returned cleanly
// once its context was cancelled.
func startLead(t *testing.T, ctx context.Context, c *Controller, fence *store.Fence) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Lead(ctx, fence) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Lead: %v", err)
		}
	})
}

// updateService applies change to the stored Service, reading it again
// after a conflict: the controller writes its status meanwhile.
func updateService(t *testing.T, ctx context.Context, reg *registry.Registry, name string, change func(*v1.Service)) {
	t.Helper()
	for {
		s, err := reg.Services().Get(ctx, "default", name)
		if err != nil {
			t.Fatal(err)
		}
		change(s)
		_, err = reg.Services().Update(ctx, s)
		if errdefs.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

func readyInstance(t *testing.T, ctx context.Context, st store.Store, rev string) {
	b, _ := json.Marshal(cluster.Instance{Instance: rev + "-abcde", Node: "n1", Namespace: "default", Revision: rev, Phase: cluster.PhaseRunning, Ready: true, Endpoint: "127.0.0.1:1", ImageDigest: digestA})
	if _, err := st.Put(ctx, store.InstanceKey("n1", rev+"-abcde"), b); err != nil {
		t.Fatal(err)
	}
}

func TestServiceLifecycle(t *testing.T) {
	ctx, st, reg := setup(t)
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	if _, err := reg.Services().Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "revision hello-00001", 0, func() bool {
		_, err := reg.Revisions().Get(ctx, "default", "hello-00001")
		return err == nil
	})
	got, _ := reg.Services().Get(ctx, "default", "hello")
	if got.Status.IsTrue("Ready") {
		t.Fatal("service Ready before any instance")
	}
	readyInstance(t, ctx, st, "hello-00001")
	var svc *v1.Service
	testenv.Eventually(t, "service Ready", 0, func() bool {
		svc, _ = reg.Services().Get(ctx, "default", "hello")
		return svc.Status.IsTrue("Ready")
	})
	if svc.Status.URL != "http://hello.default.example.com" || svc.Status.LatestReadyRevisionName != "hello-00001" ||
		len(svc.Status.Traffic) != 1 || svc.Status.Traffic[0].RevisionName != "hello-00001" || *svc.Status.Traffic[0].Percent != 100 {
		t.Fatalf("status = %+v", svc.Status)
	}
	rev, _ := reg.Revisions().Get(ctx, "default", "hello-00001")
	if len(rev.Status.ContainerStatuses) != 1 || rev.Status.ContainerStatuses[0].ImageDigest != "docker.io/library/img@"+digestA {
		t.Fatalf("revision container statuses = %+v", rev.Status.ContainerStatuses)
	}

	// Update: a new revision, traffic stays until it is ready, then moves.
	updateService(t, ctx, reg, "hello", func(s *v1.Service) { s.Spec.Template.Spec.Containers[0].Image = "img:2" })
	testenv.Eventually(t, "revision hello-00002", 0, func() bool {
		_, err := reg.Revisions().Get(ctx, "default", "hello-00002")
		return err == nil
	})
	r, _ := reg.Routes().Get(ctx, "default", "hello")
	if r.Status.Traffic[0].RevisionName != "hello-00001" {
		t.Fatalf("traffic moved before the new revision was ready: %+v", r.Status.Traffic)
	}
	readyInstance(t, ctx, st, "hello-00002")
	testenv.Eventually(t, "traffic on hello-00002", 0, func() bool {
		svc, _ = reg.Services().Get(ctx, "default", "hello")
		return svc.Status.IsTrue("Ready") && len(svc.Status.Traffic) == 1 && svc.Status.Traffic[0].RevisionName == "hello-00002" &&
			svc.Status.ObservedGeneration == 2
	})

	// Delete: children are collected.
	if err := reg.Services().Delete(ctx, "default", "hello"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "children deleted", 0, func() bool {
		_, e1 := reg.Configurations().Get(ctx, "default", "hello")
		_, e2 := reg.Routes().Get(ctx, "default", "hello")
		revs, _, _ := reg.Revisions().List(ctx, "default")
		return errdefs.IsNotFound(e1) && errdefs.IsNotFound(e2) && len(revs) == 0
	})
}

func TestFailedRevisionSurfaces(t *testing.T) {
	ctx, st, reg := setup(t)
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "bad", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "nope"}}
	reg.Services().Create(ctx, s)
	testenv.Eventually(t, "revision", 0, func() bool {
		_, err := reg.Revisions().Get(ctx, "default", "bad-00001")
		return err == nil
	})
	b, _ := json.Marshal(cluster.Instance{Instance: "bad-00001-x", Namespace: "default", Revision: "bad-00001", Phase: cluster.PhaseFailed, Reason: "ImagePullFailed", Message: "pull nope: not found"})
	st.Put(ctx, store.InstanceKey("n1", "bad-00001-x"), b)
	testenv.Eventually(t, "service Ready=False", 0, func() bool {
		svc, _ := reg.Services().Get(ctx, "default", "bad")
		c := svc.Status.GetCondition("Ready")
		// Knative's: the Route, whose only target failed, gives the reason.
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "RevisionMissing" &&
			c.Message == `Configuration "bad" does not have any ready Revision.` &&
			isFalse(&svc.Status.Status, v1.ServiceConditionRoutesReady) && isFalse(&svc.Status.Status, v1.ServiceConditionConfigurationsReady)
	})
}

// An instance that never passed its readiness probe is not a failed
// container: the revision keeps deploying, as a Knative pod that is not ready.
func TestProbeTimeoutKeepsDeploying(t *testing.T) {
	ctx, st, reg := setup(t)
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "slow", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	reg.Services().Create(ctx, s)
	testenv.Eventually(t, "revision", 0, func() bool {
		_, err := reg.Revisions().Get(ctx, "default", "slow-00001")
		return err == nil
	})
	b, _ := json.Marshal(cluster.Instance{Instance: "slow-00001-x", Namespace: "default", Revision: "slow-00001", Phase: cluster.PhaseFailed,
		Reason: "ProbeTimeout", Message: "not ready after 1m0s (probing 10.0.0.2:8080)"})
	st.Put(ctx, store.InstanceKey("n1", "slow-00001-x"), b)
	testenv.Eventually(t, "revision Deploying", 0, func() bool {
		rev, _ := reg.Revisions().Get(ctx, "default", "slow-00001")
		c := rev.Status.GetCondition(v1.RevisionConditionReady)
		return c != nil && c.Status == metav1.ConditionUnknown && c.Reason == "Deploying" &&
			!isFalse(&rev.Status.Status, v1.RevisionConditionContainerHealthy)
	})
	// A failed container next to it does fail the revision.
	b, _ = json.Marshal(cluster.Instance{Instance: "slow-00001-y", Namespace: "default", Revision: "slow-00001", Phase: cluster.PhaseFailed,
		Reason: "ImagePullFailed", Message: "pull img:1: not found"})
	st.Put(ctx, store.InstanceKey("n1", "slow-00001-y"), b)
	testenv.Eventually(t, "revision failed", 0, func() bool {
		rev, _ := reg.Revisions().Get(ctx, "default", "slow-00001")
		return isFalse(&rev.Status.Status, v1.RevisionConditionContainerHealthy)
	})
}

func TestRevisionName(t *testing.T) {
	c := &v1.Configuration{Metadata: metav1.ObjectMeta{Name: "hello", Generation: 12}}
	if got := resources.RevisionName(c); got != "hello-00012" {
		t.Fatalf("got %q", got)
	}
	c.Spec.Template.Metadata.Name = "hello-blue"
	if got := resources.RevisionName(c); got != "hello-blue" {
		t.Fatalf("got %q", got)
	}
}

// A deposed leader's first write fails its fence, and Lead returns that
// error with every goroutine it started joined.
func TestLeadReturnsWhenDeposed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := memstore.New()
	reg := registry.New(st)
	fenceKey := store.ElectionKey("controller") + "/1"
	rev, _ := st.Put(ctx, fenceKey, []byte("me"))
	c := New(st, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- c.Lead(ctx, &store.Fence{Key: fenceKey, Rev: rev}) }()
	if err := st.Delete(ctx, fenceKey); err != nil {
		t.Fatal(err)
	}
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	if _, err := reg.Services().Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrNotLeader) {
			t.Fatalf("Lead = %v, want ErrNotLeader", err)
		}
	case <-ctx.Done():
		t.Fatal("Lead kept running without its fence")
	}
	if _, err := reg.Configurations().Get(ctx, "default", "hello"); !errdefs.IsNotFound(err) {
		t.Fatalf("a deposed leader wrote a configuration: %v", err)
	}
}

// A Service deleted and created again under the same name while the
// controller was away: what the first one owned is collected, never
// adopted, and the second one gets children of its own.
func TestServiceRecreatedUnderTheSameName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	st := memstore.New()
	reg := registry.New(st)
	put := func(key string, obj any) {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	before := svc("hello", func(s *v1.Service) { s.Metadata.UID = "uid-svc-hello-before" })
	oldCfg := cfgFor(before, withCfgReady("hello-00001"), func(c *v1.Configuration) { c.Metadata.UID = "uid-cfg-hello-before" })
	put(reg.Configurations().Key("default", "hello"), oldCfg)
	put(reg.Revisions().Key("default", "hello-00001"), revFor(oldCfg, withRevReady))
	put(reg.Routes().Key("default", "hello"), routeFor(before, withRouteReady("hello-00001")))

	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:2"}}
	created, err := reg.Services().Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := st.Put(ctx, store.ElectionKey("controller")+"/1", []byte("me"))
	c := New(st, Options{Domain: resources.DomainConfig{Domain: "example.com"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	startLead(t, ctx, c, &store.Fence{Key: store.ElectionKey("controller") + "/1", Rev: rev})

	testenv.Eventually(t, "children of the new service", 0, func() bool {
		cfg, err := reg.Configurations().Get(ctx, "default", "hello")
		if err != nil || !controlledBy(&cfg.Metadata, created.Metadata.UID) {
			return false
		}
		r, err := reg.Revisions().Get(ctx, "default", "hello-00001")
		if err != nil || !controlledBy(&r.Metadata, cfg.Metadata.UID) {
			return false
		}
		rt, err := reg.Routes().Get(ctx, "default", "hello")
		return err == nil && controlledBy(&rt.Metadata, created.Metadata.UID)
	})
	r, _ := reg.Revisions().Get(ctx, "default", "hello-00001")
	if r.Spec.Containers[0].Image != "img:2" || r.Status.IsTrue(v1.RevisionConditionReady) {
		t.Fatalf("hello-00001 is the old revision: %+v", r)
	}
	readyInstance(t, ctx, st, "hello-00001")
	testenv.Eventually(t, "the new service Ready", 0, func() bool {
		got, err := reg.Services().Get(ctx, "default", "hello")
		return err == nil && got.Status.IsTrue("Ready") && got.Status.LatestReadyRevisionName == "hello-00001"
	})
}
