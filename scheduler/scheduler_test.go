package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/scheduler"
)

func placements(t *testing.T, st store.Store) []cluster.Placement {
	t.Helper()
	kvs, _, err := st.List(context.Background(), store.PlacementPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []cluster.Placement
	for _, kv := range kvs {
		var p cluster.Placement
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			t.Fatal(err)
		}
		if node, inst := store.SplitLast(kv.Key); node != p.Node || inst != p.Instance {
			t.Fatalf("placement %s holds node %q instance %q", kv.Key, p.Node, p.Instance)
		}
		out = append(out, p)
	}
	return out
}

func setup(t *testing.T, st store.Store, nodes ...string) {
	t.Helper()
	reg := registry.New(st)
	_, err := reg.Revisions().Create(context.Background(), &v1.Revision{
		Metadata: metav1.ObjectMeta{Name: "hello-00001", Namespace: "default", Labels: map[string]string{v1.ServiceLabelKey: "hello"}},
		Spec:     v1.RevisionSpec{Containers: []v1.Container{{Image: "example.com/hello:1", Resources: v1.ResourceRequirements{Requests: map[string]string{"cpu": "100m", "memory": "64Mi"}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		testenv.PutJSON(t, st, store.NodeKey(n), cluster.Node{Name: n, Address: "127.0.0.1", MaxInstances: 10, CapacityMilliCPU: 2000, CapacityMemoryMiB: 2048})
	}
	testenv.PutJSON(t, st, store.ScaleKey("default", "hello-00001"), cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 2})
}

func TestLeadPlacesAndReplaces(t *testing.T) {
	st := testenv.StartEtcd(t)
	setup(t, st, "node-a", "node-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := scheduler.New(st, scheduler.Options{}, testenv.Quiet())
	done := make(chan error, 1)
	go func() {
		done <- election.Run(ctx, st.Client(), election.Config{Role: "scheduler", Identity: "one", TTL: 2 * time.Second}, testenv.Quiet(), s.Lead)
	}()

	testenv.Eventually(t, "2 placements", 0, func() bool { return len(placements(t, st)) == 2 })
	ps := placements(t, st)
	if ps[0].Node == ps[1].Node {
		t.Fatalf("both instances on %s", ps[0].Node)
	}
	for _, p := range ps {
		if p.Spec.Image != "example.com/hello:1" || p.Spec.Service != "hello" || p.Spec.MilliCPU != 100 || p.Spec.MemoryMiB != 64 || p.Spec.Port != 8080 {
			t.Errorf("placement spec: %+v", p.Spec)
		}
	}

	// node-a dies: its placement moves to node-b.
	if err := st.Delete(ctx, store.NodeKey("node-a")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "both placements on node-b", 0, func() bool {
		ps := placements(t, st)
		return len(ps) == 2 && ps[0].Node == "node-b" && ps[1].Node == "node-b"
	})

	// Scale to zero removes them.
	testenv.PutJSON(t, st, store.ScaleKey("default", "hello-00001"), cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 0})
	testenv.Eventually(t, "no placements", 0, func() bool { return len(placements(t, st)) == 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLeadFailedInstanceReplaced(t *testing.T) {
	st := testenv.StartEtcd(t)
	setup(t, st, "node-a")
	testenv.PutJSON(t, st, store.ScaleKey("default", "hello-00001"), cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := scheduler.New(st, scheduler.Options{Policy: scheduler.Policy{Backoff: time.Hour, MaxBackoff: time.Hour, MaxFailures: 2}}, testenv.Quiet())
	go election.Run(ctx, st.Client(), election.Config{Role: "scheduler", Identity: "one", TTL: 2 * time.Second}, testenv.Quiet(), s.Lead)

	testenv.Eventually(t, "1 placement", 0, func() bool { return len(placements(t, st)) == 1 })
	failed := placements(t, st)[0]
	testenv.PutJSON(t, st, store.InstanceKey(failed.Node, failed.Instance), cluster.Instance{Instance: failed.Instance, Node: failed.Node,
		Namespace: "default", Revision: "hello-00001", Phase: cluster.PhaseFailed, Reason: "ImagePullBackOff"})
	testenv.Eventually(t, "a replacement", 0, func() bool {
		ps := placements(t, st)
		return len(ps) == 1 && ps[0].Instance != failed.Instance
	})
	// The second failure waits out the (hour-long) backoff.
	second := placements(t, st)[0]
	testenv.PutJSON(t, st, store.InstanceKey(second.Node, second.Instance), cluster.Instance{Instance: second.Instance, Node: second.Node,
		Namespace: "default", Revision: "hello-00001", Phase: cluster.PhaseFailed})
	time.Sleep(300 * time.Millisecond)
	if ps := placements(t, st); len(ps) != 1 || ps[0].Instance != second.Instance {
		t.Fatalf("second failure replaced during backoff: %+v", ps)
	}
}

// Two schedulers campaign at once: only the leader writes, so there are
// exactly the desired placements; when it dies the standby resumes from
// etcd without placing anything twice.
func TestTwoSchedulersOneLeader(t *testing.T) {
	st := testenv.StartEtcd(t)
	setup(t, st, "node-a", "node-b", "node-c")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaders := make(chan *store.Fence, 4)
	for _, id := range []string{"one", "two"} {
		s := scheduler.New(st, scheduler.Options{}, testenv.Quiet())
		go election.Run(ctx, st.Client(), election.Config{Role: "scheduler", Identity: id, TTL: 1 * time.Second}, testenv.Quiet(),
			func(ctx context.Context, f *store.Fence) error {
				leaders <- f
				return s.Lead(ctx, f)
			})
	}
	first := <-leaders
	testenv.Eventually(t, "2 placements", 0, func() bool { return len(placements(t, st)) == 2 })
	time.Sleep(300 * time.Millisecond) // time for a wrong second writer to show up
	if ps := placements(t, st); len(ps) != 2 || ps[0].Node == ps[1].Node {
		t.Fatalf("placements with two schedulers: %+v", ps)
	}
	before := placements(t, st)

	// Kill the leader's session; the standby takes over.
	kv, err := st.Get(ctx, first.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeLease(ctx, kv.Lease); err != nil {
		t.Fatal(err)
	}
	var second *store.Fence
	select {
	case second = <-leaders:
	case <-time.After(10 * time.Second):
		t.Fatal("standby never took over")
	}
	if second.Key == first.Key {
		t.Fatal("same term twice")
	}
	// The new leader acts on changes: scale to 3.
	testenv.PutJSON(t, st, store.ScaleKey("default", "hello-00001"), cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 3})
	testenv.Eventually(t, "3 placements", 0, func() bool { return len(placements(t, st)) == 3 })
	time.Sleep(300 * time.Millisecond)
	after := placements(t, st)
	nodes := map[string]bool{}
	for _, p := range after {
		nodes[p.Node] = true
	}
	if len(after) != 3 || len(nodes) != 3 {
		t.Fatalf("after failover: %+v", after)
	}
	kept := 0
	for _, b := range before {
		for _, a := range after {
			if a.Instance == b.Instance {
				kept++
			}
		}
	}
	if kept != 2 {
		t.Fatalf("failover replaced running placements: before %+v after %+v", before, after)
	}
}

// A deposed leader's Lead stops at its first write instead of writing.
func TestLeadStopsWhenNotLeader(t *testing.T) {
	st := testenv.StartEtcd(t)
	setup(t, st, "node-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stale := &store.Fence{Key: store.ElectionKey("scheduler") + "/gone", Rev: 1}
	err := scheduler.New(st, scheduler.Options{}, testenv.Quiet()).Lead(ctx, stale)
	if !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("Lead = %v, want ErrNotLeader", err)
	}
	if ps := placements(t, st); len(ps) != 0 {
		t.Fatalf("deposed leader placed %+v", ps)
	}
}
