package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// startWithConfigs runs a controller over configs stored before it starts,
// with a clock the test can move forward.
func startWithConfigs(t *testing.T, configs map[string]map[string]string) (context.Context, store.Store, *registry.Registry, *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st := memstore.New()
	reg := registry.New(st)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, data := range configs {
		putConfig(t, ctx, st, name, data)
	}
	cw := liveconfig.NewWatcher(st, log)
	go cw.Run(ctx)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	rev, _ := st.Put(ctx, store.ElectionKey("controller")+"/1", []byte("me"))
	c := New(st, Options{Config: cw, Now: now}, log)
	startLead(t, ctx, c, &store.Fence{Key: store.ElectionKey("controller") + "/1", Rev: rev})
	return ctx, st, reg, &skew
}

// rollOut creates or updates service hello to image img and waits until
// its new revision serves all traffic.
func rollOut(t *testing.T, ctx context.Context, st store.Store, reg *registry.Registry, img string, ann map[string]string) string {
	t.Helper()
	// The controller writes the Service's status meanwhile, so a write from
	// a stale read conflicts: read again and retry, as any client does.
	var s *v1.Service
	for {
		cur, err := reg.Services().Get(ctx, "default", "hello")
		if errdefs.IsNotFound(err) {
			cur = &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
		} else if err != nil {
			t.Fatal(err)
		}
		cur.Spec.Template.Metadata.Annotations = ann
		cur.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: img}}
		if cur.Metadata.UID == "" {
			s, err = reg.Services().Create(ctx, cur)
		} else {
			s, err = reg.Services().Update(ctx, cur)
		}
		if errdefs.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	rev := resourcesRevisionName(s.Metadata.Name, s.Metadata.Generation)
	testenv.Eventually(t, "revision "+rev, 0, func() bool {
		_, err := reg.Revisions().Get(ctx, "default", rev)
		return err == nil
	})
	readyInstance(t, ctx, st, rev)
	testenv.Eventually(t, "traffic on "+rev, 0, func() bool {
		r, err := reg.Routes().Get(ctx, "default", "hello")
		return err == nil && len(r.Status.Traffic) == 1 && r.Status.Traffic[0].RevisionName == rev
	})
	return rev
}

func resourcesRevisionName(cfg string, gen int64) string { return fmt.Sprintf("%s-%05d", cfg, gen) }

func revisionExists(ctx context.Context, reg *registry.Registry, name string) bool {
	_, err := reg.Revisions().Get(ctx, "default", name)
	return err == nil
}

// Stale non-active revisions go once old enough; the latest ready one, a
// routed one and one annotated no-gc stay; routing state labels follow.
func TestRevisionGCByAge(t *testing.T) {
	ctx, st, reg, skew := startWithConfigs(t, map[string]map[string]string{config.NameGC: {
		"retain-since-create-time": "1h", "retain-since-last-active-time": "1h",
		"min-non-active-revisions": "0", "max-non-active-revisions": "disabled",
	}})
	r1 := rollOut(t, ctx, st, reg, "img:1", map[string]string{v1.NoGCAnnotation: "true"})
	r2 := rollOut(t, ctx, st, reg, "img:2", nil)
	r3 := rollOut(t, ctx, st, reg, "img:3", nil)
	testenv.Eventually(t, "routing state labels", 0, func() bool {
		a, _ := reg.Revisions().Get(ctx, "default", r2)
		b, _ := reg.Revisions().Get(ctx, "default", r3)
		return a != nil && b != nil && a.Metadata.Labels[v1.RoutingStateLabelKey] == v1.RoutingStateReserve &&
			b.Metadata.Labels[v1.RoutingStateLabelKey] == v1.RoutingStateActive &&
			a.Metadata.Annotations[v1.RoutingStateModifiedAnnotation] != ""
	})
	if !revisionExists(ctx, reg, r1) || !revisionExists(ctx, reg, r2) {
		t.Fatal("young revisions collected")
	}
	skew.Store(int64(2 * time.Hour))
	// Any change re-reconciles the configuration (the periodic resync
	// would too, but only after a quarter of the shortest bound).
	updateService(t, ctx, reg, "hello", func(s *v1.Service) { s.Metadata.Annotations = map[string]string{"touched": "1"} })
	testenv.Eventually(t, r2+" collected", 0, func() bool { return !revisionExists(ctx, reg, r2) })
	if !revisionExists(ctx, reg, r1) || !revisionExists(ctx, reg, r3) {
		t.Fatalf("no-gc %s or latest %s collected", r1, r3)
	}
}

// Above max-non-active-revisions the oldest non-active revision goes at
// once, whatever its age.
func TestRevisionGCByCount(t *testing.T) {
	ctx, st, reg, _ := startWithConfigs(t, map[string]map[string]string{config.NameGC: {
		"retain-since-create-time": "disabled", "retain-since-last-active-time": "disabled",
		"min-non-active-revisions": "0", "max-non-active-revisions": "1",
	}})
	r1 := rollOut(t, ctx, st, reg, "img:1", nil)
	r2 := rollOut(t, ctx, st, reg, "img:2", nil)
	rollOut(t, ctx, st, reg, "img:3", nil)
	testenv.Eventually(t, r1+" collected", 0, func() bool { return !revisionExists(ctx, reg, r1) })
	if !revisionExists(ctx, reg, r2) {
		t.Fatal("the one allowed non-active revision was collected")
	}
}

// A revision that never becomes ready fails with ProgressDeadlineExceeded
// after config-deployment's progress-deadline, and the Service says so.
func TestProgressDeadlineExceeded(t *testing.T) {
	ctx, _, reg, skew := startWithConfigs(t, map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}})
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "slow", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	if _, err := reg.Services().Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "revision", 0, func() bool { return revisionExists(ctx, reg, "slow-00001") })
	rev, _ := reg.Revisions().Get(ctx, "default", "slow-00001")
	if c := rev.Status.GetCondition("Ready"); c != nil && c.Status == metav1.ConditionFalse {
		t.Fatalf("failed before the deadline: %+v", c)
	}
	skew.Store(int64(time.Minute))
	testenv.Eventually(t, "service Ready=False", 0, func() bool {
		svc, _ := reg.Services().Get(ctx, "default", "slow")
		c := svc.Status.GetCondition(v1.ServiceConditionConfigurationsReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "RevisionFailed" &&
			c.Message == `Revision "slow-00001" failed with message: Unable to create pods for more than 30 seconds..` &&
			isFalse(&svc.Status.Status, v1.ServiceConditionReady)
	})
	rev, _ = reg.Revisions().Get(ctx, "default", "slow-00001")
	if c := rev.Status.GetCondition(v1.RevisionConditionResourcesAvailable); c == nil || c.Reason != "ProgressDeadlineExceeded" {
		t.Fatalf("ResourcesAvailable = %+v", c)
	}
}
