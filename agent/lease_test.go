package agent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/scheduler"
)

// An agent killed without a word (its etcd connection gone, nothing
// revoked) loses its node when the default lease runs out; the scheduler
// then places its instance on the other node, whose agent runs it. The
// test prints how long each step took after the kill.
func TestKilledAgentsInstanceReplaced(t *testing.T) {
	st := testenv.StartEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := registry.New(st)
	if _, err := reg.Revisions().Create(ctx, &v1.Revision{
		Metadata: metav1.ObjectMeta{Name: "hello-00001", Namespace: "default", Labels: map[string]string{v1.ServiceLabelKey: "hello"}},
		Spec:     v1.RevisionSpec{Containers: []v1.Container{{Image: "example.com/hello:1"}}},
	}); err != nil {
		t.Fatal(err)
	}
	testenv.PutJSON(t, st, store.ScaleKey("default", "hello-00001"), cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 1})

	// node-a's agent has an etcd connection of its own, to be cut.
	conn, err := etcdstore.Dial(st.Client().Endpoints(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := func(name string, s store.Store, ports int) (*fakeNode, func()) {
		cfg, err := Config{NodeName: name, StateDir: t.TempDir(), HostNetwork: true, DrainDelay: -1,
			PortMin: ports, PortMax: ports + 999}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.LeaseTTL != DefaultLeaseTTL {
			t.Fatalf("LeaseTTL %v, want the default", cfg.LeaseTTL)
		}
		fn := newFakeNode()
		t.Cleanup(fn.shutdown)
		a, err := newAgent(cfg, s, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), fn, nil)
		if err != nil {
			t.Fatal(err)
		}
		return fn, runAgent(t, a)
	}
	_, stopA := start("node-a", conn, 31000)
	testenv.Eventually(t, "node-a registered", 0, func() bool {
		_, err := st.Get(ctx, store.NodeKey("node-a"))
		return err == nil
	})
	s := scheduler.New(st, scheduler.Options{}, testenv.Quiet())
	go func() {
		_ = election.Run(ctx, st.Client(), election.Config{Role: "scheduler", Identity: "one", TTL: 2 * time.Second}, testenv.Quiet(), s.Lead)
	}()
	instanceOn := func(node string) bool {
		kvs, _, err := st.List(ctx, store.InstancePrefix+node+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if inst, err := store.JSON[cluster.Instance](kv); err == nil && running(inst) {
				return true
			}
		}
		return false
	}
	testenv.Eventually(t, "instance running on node-a", 10*time.Second, func() bool { return instanceOn("node-a") })
	_, _ = start("node-b", st, 32000)

	// kill -9: the connection drops, keep-alives stop, nothing is revoked.
	t0 := time.Now()
	conn.Close()
	stopped := make(chan struct{})
	go func() { stopA(); close(stopped) }()
	defer func() { <-stopped }()
	testenv.Eventually(t, "node-a dropped", 15*time.Second, func() bool {
		_, err := st.Get(ctx, store.NodeKey("node-a"))
		return err != nil
	})
	tGone := time.Since(t0)
	testenv.Eventually(t, "instance placed on node-b", 10*time.Second, func() bool {
		kvs, _, err := st.List(ctx, store.PlacementPrefix)
		return err == nil && len(kvs) == 1 && strings.HasPrefix(kvs[0].Key, store.PlacementPrefix+"node-b/")
	})
	tPlaced := time.Since(t0)
	testenv.Eventually(t, "instance running on node-b", 10*time.Second, func() bool { return instanceOn("node-b") })
	t.Logf("lease TTL %v: node dropped %v after the kill, instance re-placed after %v, running on the other node after %v",
		DefaultLeaseTTL, tGone.Round(time.Millisecond), tPlaced.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
