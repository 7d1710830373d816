package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/agent/queue"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// The tests in this file run the agent on fakeNode and memstore: no root,
// no containerd, no etcd. agent_test.go and pod_test.go run it for real.

type unitEnv struct {
	st   *memstore.Store
	node *fakeNode
	cfg  Config
}

func newUnitEnv(t *testing.T, hostNetwork bool) *unitEnv {
	t.Helper()
	cfg, err := Config{NodeName: node, StateDir: t.TempDir(), HostNetwork: hostNetwork, DrainDelay: -1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	e := &unitEnv{st: memstore.New(), node: newFakeNode(), cfg: cfg}
	t.Cleanup(e.node.shutdown)
	return e
}

// run runs an agent on the fake node until the returned stop is called
// (or the test ends).
func (e *unitEnv) run(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	var pn podNetwork
	if !cfg.HostNetwork {
		pn = e.node
	}
	a, err := newAgent(cfg, e.st, slog.New(slog.NewTextHandler(t.Output(), nil)), e.node, pn)
	if err != nil {
		t.Fatal(err)
	}
	return runAgent(t, a)
}

// spec is a revision's instance; with the fake CNI its app listens on a
// free port of its own loopback address.
func (e *unitEnv) spec(t *testing.T, rev string) cluster.InstanceSpec {
	s := cluster.InstanceSpec{Namespace: "default", Service: "hello", Configuration: "hello", Revision: rev, Image: "example.com/hello:1", TimeoutSeconds: 5}
	if !e.cfg.HostNetwork {
		s.Port = int32(testenv.FreePort(t))
	}
	return s
}

func (e *unitEnv) place(t *testing.T, name string, spec cluster.InstanceSpec) {
	t.Helper()
	b, _ := json.Marshal(cluster.Placement{Instance: name, Node: node, Spec: spec, PlacedAt: time.Now()})
	if _, err := e.st.Put(context.Background(), store.PlacementKey(node, name), b); err != nil {
		t.Fatal(err)
	}
}

func (e *unitEnv) unplace(t *testing.T, name string) {
	t.Helper()
	if err := e.st.Delete(context.Background(), store.PlacementKey(node, name)); err != nil {
		t.Fatal(err)
	}
}

// record is the instance record of name, if there is one.
func (e *unitEnv) record(t *testing.T, name string) (cluster.Instance, bool) {
	t.Helper()
	kv, err := e.st.Get(context.Background(), store.InstanceKey(node, name))
	if errors.Is(err, errdefs.ErrNotFound) {
		return cluster.Instance{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var inst cluster.Instance
	if err := json.Unmarshal(kv.Value, &inst); err != nil {
		t.Fatal(err)
	}
	return inst, true
}

func (e *unitEnv) waitRecord(t *testing.T, name, what string, cond func(cluster.Instance) bool) cluster.Instance {
	t.Helper()
	var last cluster.Instance
	testenv.Eventually(t, "instance "+name+" "+what, 0, func() bool {
		inst, ok := e.record(t, name)
		last = inst
		return ok && cond(inst)
	})
	return last
}

func (e *unitEnv) waitNoRecord(t *testing.T, name string) {
	t.Helper()
	testenv.Eventually(t, "instance record "+name+" deleted", 0, func() bool {
		_, ok := e.record(t, name)
		return !ok
	})
}

// A placement becomes a running instance with its record; removing the
// placement tears it down: record, container, network, queue-proxy.
func TestAgentPlaceAndRemove(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hostNetwork bool
	}{{"cni", false}, {"host network", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t, tc.hostNetwork)
			e.run(t, e.cfg)
			e.place(t, "hello-a", e.spec(t, "hello-00001"))
			inst := e.waitRecord(t, "hello-a", "running and ready", running)

			if kv, err := e.st.Get(context.Background(), store.NodeKey(node)); err != nil || kv.Lease == 0 {
				t.Errorf("node record: %+v, %v (want it on a lease)", kv, err)
			}
			if kv, _ := e.st.Get(context.Background(), store.InstanceKey(node, "hello-a")); kv.Lease == 0 {
				t.Error("instance record not on the node's lease")
			}
			if inst.Node != node || inst.Revision != "hello-00001" || inst.ImageDigest != "example.com/hello@"+fakeDigest("example.com/hello:1") {
				t.Errorf("record %+v", inst)
			}
			if tc.hostNetwork != (inst.ContainerIP == "") {
				t.Errorf("ContainerIP %q with host network %v", inst.ContainerIP, tc.hostNetwork)
			}
			if code, body := get(t, inst.Endpoint); code != 200 || body != "fake hello-a" {
				t.Errorf("GET via queue-proxy: %d %q", code, body)
			}
			if code, _ := get(t, inst.Endpoint, queue.ProbeHeader, queue.ProbeValue); code != 200 {
				t.Errorf("queue probe: %d, want 200", code)
			}

			e.unplace(t, "hello-a")
			e.waitNoRecord(t, "hello-a")
			if e.node.has("hello-a") {
				t.Error("container still exists after the placement was removed")
			}
			if !tc.hostNetwork && !e.node.tornDown("hello-a") {
				t.Error("network not torn down")
			}
			if c, err := net.DialTimeout("tcp", inst.Endpoint, time.Second); err == nil {
				c.Close()
				t.Error("queue-proxy still listening after stop")
			}
		})
	}
}

// A restarted agent adopts the containers an earlier one left for placed
// instances without restarting them, removes those left for placements
// since deleted (sidecars included), and starts the rest.
func TestAgentAdoptsAtStart(t *testing.T) {
	e := newUnitEnv(t, false)
	keep := e.spec(t, "hello-00001")
	queuePort := testenv.FreePort(t)
	e.node.leave("keep", map[string]string{
		labelInstance: "keep", labelNamespace: "default", labelRevision: "hello-00001",
		labelPort: strconv.Itoa(int(keep.Port)), labelQueuePort: strconv.Itoa(queuePort),
		labelNetNS: "/fake/netns/keep", labelIP: "127.0.2.1",
	})
	e.node.leave("drop", map[string]string{
		labelInstance: "drop", labelRevision: "hello-00001", labelNetNS: "/fake/netns/drop", labelIP: "127.0.2.2",
	})
	e.node.leave("drop.log", map[string]string{labelPod: "drop"})
	e.place(t, "keep", keep)
	e.place(t, "fresh", e.spec(t, "hello-00001"))

	e.run(t, e.cfg)
	inst := e.waitRecord(t, "keep", "adopted", running)
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(queuePort)); inst.Endpoint != want {
		t.Errorf("adopted endpoint %s, want the queue port it had: %s", inst.Endpoint, want)
	}
	if code, body := get(t, inst.Endpoint); code != 200 || body != "fake keep" {
		t.Errorf("GET adopted instance: %d %q", code, body)
	}
	if n := e.node.startCount("keep"); n != 0 {
		t.Errorf("adopted container started %d times, want 0", n)
	}
	e.waitRecord(t, "fresh", "running", running)
	testenv.Eventually(t, "orphans removed", 0, func() bool {
		return !e.node.has("drop") && !e.node.has("drop.log") && e.node.tornDown("drop")
	})
}

// An agent that stops leaves its containers running and its records on
// its lease (left to run out, so edges keep routing there); the next one
// adopts them, by their labels, and rewrites each record on its own lease
// without ever taking the instance out of rotation; with StopOnExit it
// stops them and revokes its lease. Knative names containerd would not
// take as an ID ("--", or too long with a container name) work the same.
func TestAgentRestart(t *testing.T) {
	for _, name := range []string{"keep", "hello--world-00001-x7k2p", strings.Repeat("r", 63)} {
		t.Run(name, func(t *testing.T) {
			e := newUnitEnv(t, true)
			id := containerID(name)
			stop1 := e.run(t, e.cfg)
			e.place(t, name, e.spec(t, "hello-00001"))
			before := e.waitRecord(t, name, "running", running)
			stop1()
			left, err := e.st.Get(context.Background(), store.InstanceKey(node, name))
			if err != nil {
				t.Fatalf("instance record gone with a gracefully stopped agent: %v", err)
			}
			nodeKV, err := e.st.Get(context.Background(), store.NodeKey(node))
			if err != nil || nodeKV.Lease != left.Lease {
				t.Fatalf("node record %+v, %v: want it left on the instance's lease %x", nodeKV, err, left.Lease)
			}
			if !e.node.has(id) {
				t.Fatal("container stopped with the agent")
			}

			// Every write of the record while the next agent adopts it.
			wctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			writes := e.st.Watch(wctx, store.InstanceKey(node, name), 0)
			cfg := e.cfg
			cfg.StopOnExit = true
			stop2 := e.run(t, cfg)
			var after cluster.Instance
			for after.Phase == "" {
				select {
				case wr := <-writes:
					for _, ev := range wr.Events {
						var rec cluster.Instance
						if ev.Type != store.EventPut || json.Unmarshal(ev.KV.Value, &rec) != nil {
							t.Fatalf("instance record event %+v while adopting", ev)
						}
						if !running(rec) {
							t.Errorf("adopting agent wrote the record out of rotation: phase %s ready %v", rec.Phase, rec.Ready)
						}
						if ev.KV.Lease == left.Lease {
							t.Error("record rewritten on the old agent's lease")
						}
						after = rec
					}
				case <-time.After(10 * time.Second):
					t.Fatal("adopted instance's record not rewritten")
				}
			}
			if n := e.node.startCount(id); n != 1 {
				t.Errorf("container started %d times, want once (adopted, not restarted)", n)
			}
			if after.Endpoint != before.Endpoint {
				t.Errorf("endpoint changed on adoption: %s -> %s", before.Endpoint, after.Endpoint)
			}
			stop2()
			if e.node.has(id) {
				t.Error("container left running by an agent with StopOnExit")
			}
			if _, ok := e.record(t, name); ok {
				t.Error("instance record outlived an agent with StopOnExit (lease not revoked)")
			}
		})
	}
}

// A container that exits before it is ever ready fails the instance with
// its exit code and the end of its log, as a pod's lastState.terminated
// says (terminationMessagePolicy FallbackToLogsOnError); an incarnation
// that comes up clears them.
func TestExitBeforeReadyRecordsCodeAndLog(t *testing.T) {
	e := newUnitEnv(t, true)
	e.node.crashOnStart("crashy", 5, "Started...\nCrashed...\n")
	e.run(t, e.cfg)
	e.place(t, "crashy", e.spec(t, "hello-00001"))
	inst := e.waitRecord(t, "crashy", "failed", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	if inst.Reason != "ContainerExited" || inst.ExitCode == nil || *inst.ExitCode != 5 || inst.Ready {
		t.Fatalf("record %+v, want Failed/ContainerExited with exit code 5", inst)
	}
	if inst.TerminationMessage != "Started...\nCrashed..." {
		t.Fatalf("termination message %q", inst.TerminationMessage)
	}
	e.node.mu.Lock()
	delete(e.node.crashing, "crashy")
	e.node.mu.Unlock()
	e.waitRecord(t, "crashy", "running without the last exit", func(i cluster.Instance) bool {
		return running(i) && i.ExitCode == nil && i.TerminationMessage == ""
	})
}

func TestTerminationMessage(t *testing.T) {
	var many strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many, "line %d\n", i)
	}
	long := strings.Repeat("x", 3000)
	for _, tc := range []struct {
		name, log, want string
	}{
		{"empty", "", ""},
		{"one line without newline", "Crashed...", "Crashed..."},
		{"the final newline goes", "a\nb\n\n", "a\nb"},
		{"the last 80 lines", many.String(), strings.TrimSuffix(strings.Join(strings.SplitAfter(many.String(), "\n")[20:100], ""), "\n")},
		{"the last 2048 bytes", long + "\n", long[len(long)-2047:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.log")
			if err := os.WriteFile(p, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := terminationMessage(p); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := terminationMessage(filepath.Join(t.TempDir(), "missing.log")); got != "" {
		t.Fatalf("missing log: %q", got)
	}
}

// A serving container that dies after being ready is restarted in place,
// as a kubelet restarts a pod's container: same container, RestartCount 1,
// serving again; the instance is not failed.
func TestAgentRestartsDeadTaskInPlace(t *testing.T) {
	e := newUnitEnv(t, true)
	e.run(t, e.cfg)
	e.place(t, "crashy", e.spec(t, "hello-00001"))
	e.waitRecord(t, "crashy", "running", running)
	e.node.crash("crashy")
	inst := e.waitRecord(t, "crashy", "running again after a restart", func(i cluster.Instance) bool {
		return running(i) && i.RestartCount == 1
	})
	if n, r := e.node.startCount("crashy"), e.node.restartCount("crashy"); n != 1 || r != 1 {
		t.Errorf("container created %d times and restarted %d, want 1 and 1", n, r)
	}
	if code, body := get(t, inst.Endpoint); code != 200 || body != "fake crashy" {
		t.Errorf("GET after restart: %d %q", code, body)
	}
}

// A placement deleted and created again under the same name gets a fresh
// instance, whether the two changes reach the agent together or apart.
func TestAgentReplacesRecreatedPlacement(t *testing.T) {
	e := newUnitEnv(t, true)
	e.run(t, e.cfg)
	e.place(t, "again", e.spec(t, "hello-00001"))
	e.waitRecord(t, "again", "running", running)
	e.unplace(t, "again")
	e.place(t, "again", e.spec(t, "hello-00002"))
	inst := e.waitRecord(t, "again", "running the new revision", func(i cluster.Instance) bool {
		return running(i) && i.Revision == "hello-00002"
	})
	if n := e.node.startCount("again"); n != 2 {
		t.Errorf("container started %d times, want 2", n)
	}
	if code, body := get(t, inst.Endpoint); code != 200 || body != "fake again" {
		t.Errorf("GET the new instance: %d %q", code, body)
	}
}

// A node lease lost (etcd cut off longer than the TTL, or expired) fences
// the node: every instance's container is removed and its queue-proxy
// closed, as the cluster places them elsewhere; the agent then registers a
// new lease and runs again what placements/ holds for it.
func TestAgentFencedOnLostLease(t *testing.T) {
	e := newUnitEnv(t, false)
	e.run(t, e.cfg)
	e.place(t, "keep", e.spec(t, "hello-00001"))
	e.place(t, "moved", e.spec(t, "hello-00001"))
	keep := e.waitRecord(t, "keep", "running", running)
	moved := e.waitRecord(t, "moved", "running", running)
	kv, err := e.st.Get(context.Background(), store.NodeKey(node))
	if err != nil {
		t.Fatal(err)
	}
	// The scheduler re-placed "moved" elsewhere meanwhile; "keep" stays.
	e.unplace(t, "moved")
	removesBefore := e.node.removeCount(containerID("keep"))
	t0 := time.Now()
	if err := e.st.ExpireLease(kv.Lease); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "containers removed", 0, func() bool {
		return e.node.removeCount(containerID("keep")) > removesBefore && !e.node.has(containerID("moved"))
	})
	t.Logf("instances stopped %s after the lease expired", time.Since(t0))
	if c, err := net.DialTimeout("tcp", moved.Endpoint, time.Second); err == nil {
		c.Close()
		t.Error("fenced instance's queue-proxy still listening")
	}

	after := e.waitRecord(t, "keep", "running again on a new lease", running)
	t.Logf("placed instance running again %s after the lease expired", time.Since(t0))
	if kv2, err := e.st.Get(context.Background(), store.InstanceKey(node, "keep")); err != nil || kv2.Lease == kv.Lease {
		t.Errorf("record %+v, %v: want it on a new lease", kv2, err)
	}
	if n := e.node.startCount(containerID("keep")); n != 2 {
		t.Errorf("kept instance's container started %d times, want 2 (stopped when fenced, then started afresh)", n)
	}
	if code, body := get(t, after.Endpoint); code != 200 || body != "fake keep" {
		t.Errorf("GET after re-registration: %d %q (endpoint was %s)", code, body, keep.Endpoint)
	}
	if _, ok := e.record(t, "moved"); ok {
		t.Error("record of an instance no longer placed here came back")
	}
	if e.node.has(containerID("moved")) {
		t.Error("container of an instance no longer placed here came back")
	}
}
