package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-serving/kiln/agent/queue"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

const node = "node-a"

var (
	helloOnce sync.Once
	helloImg  v1.Image
	helloErr  error
)

// testEnv is a private containerd, an embedded etcd, a registry holding the
// hello image and an agent config with its own bridge and subnet.
type testEnv struct {
	st     store.Store
	ctd    *containerd.Client
	ref    string
	cfg    Config
	regURL string
}

func newTestEnv(t *testing.T, hostNetwork bool) *testEnv {
	t.Helper()
	addr := testenv.StartContainerd(t)
	st := testenv.StartEtcd(t)

	helloOnce.Do(func() {
		helloImg, helloErr = imagebuild.BuildGoImage(context.Background(), "../deploy/samples/hello")
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := imagebuild.ServeRegistry(ln)
	t.Cleanup(func() { reg.Close() })
	ref := ln.Addr().String() + "/samples/hello:latest"
	if _, err := imagebuild.Push(context.Background(), helloImg, ref); err != nil {
		t.Fatal(err)
	}

	c, err := containerd.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	bridge := fmt.Sprintf("kt%d", rand.IntN(1_000_000))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	return &testEnv{
		st:     st,
		ctd:    c,
		ref:    ref,
		regURL: ln.Addr().String(),
		cfg: Config{
			NodeName:          node,
			ContainerdAddress: addr,
			StateDir:          t.TempDir(),
			BridgeName:        bridge,
			Subnet:            testenv.FreeSubnet(t),
			HostNetwork:       hostNetwork,
			LeaseTTL:          5 * time.Second,
		},
	}
}

// startAgent runs an agent until the returned stop is called (or the test
// ends).
func (e *testEnv) startAgent(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	a, err := New(cfg, e.st, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return runAgent(t, a)
}

// runAgent runs a until the returned stop is called (or the test ends);
// stop checks Run's error and that no worker outlived it.
func runAgent(t *testing.T, a *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent Run: %v", err)
			}
			// Workers leave the map as their goroutine ends.
			a.mu.Lock()
			defer a.mu.Unlock()
			if len(a.workers) != 0 {
				t.Errorf("Run returned with %d workers still running", len(a.workers))
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *testEnv) spec(rev string) cluster.InstanceSpec {
	return cluster.InstanceSpec{
		Namespace:      "default",
		Service:        "hello",
		Configuration:  "hello",
		Revision:       rev,
		Image:          e.ref,
		Env:            map[string]string{"RESPONSE": "Hello kiln!", "EXTRA": "x"},
		EnvOrder:       []string{"RESPONSE", "EXTRA"},
		TimeoutSeconds: 30,
	}
}

func (e *testEnv) place(t *testing.T, name string, spec cluster.InstanceSpec) {
	t.Helper()
	b, _ := json.Marshal(cluster.Placement{Instance: name, Node: node, Spec: spec, PlacedAt: time.Now()})
	if _, err := e.st.Put(context.Background(), store.PlacementKey(node, name), b); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) unplace(t *testing.T, name string) {
	t.Helper()
	if err := e.st.Delete(context.Background(), store.PlacementKey(node, name)); err != nil {
		t.Fatal(err)
	}
}

// waitInstance polls the instance record until cond holds.
func (e *testEnv) waitInstance(t *testing.T, name string, cond func(cluster.Instance) bool) cluster.Instance {
	t.Helper()
	var last cluster.Instance
	met := false
	defer func() {
		if !met { // Eventually gave up
			t.Logf("instance %s: last record %+v", name, last)
		}
	}()
	testenv.Eventually(t, "instance "+name+" to meet its condition", 60*time.Second, func() bool {
		kv, err := e.st.Get(context.Background(), store.InstanceKey(node, name))
		if err != nil {
			return false
		}
		last = cluster.Instance{}
		if err := json.Unmarshal(kv.Value, &last); err != nil {
			t.Fatal(err)
		}
		return cond(last)
	})
	met = true
	return last
}

func (e *testEnv) waitGone(t *testing.T, key string) {
	t.Helper()
	testenv.Eventually(t, key+" to go", 60*time.Second, func() bool {
		_, err := e.st.Get(context.Background(), key)
		return errors.Is(err, errdefs.ErrNotFound)
	})
}

func (e *testEnv) nsCtx() context.Context {
	return namespaces.WithNamespace(context.Background(), "kiln")
}

func (e *testEnv) taskPID(t *testing.T, id string) uint32 {
	t.Helper()
	ctr, err := e.ctd.LoadContainer(e.nsCtx(), id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(e.nsCtx(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return task.Pid()
}

func running(i cluster.Instance) bool { return i.Phase == cluster.PhaseRunning && i.Ready }

func get(t *testing.T, endpoint string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+endpoint+"/", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInstanceLifecycle(t *testing.T) {
	tests := []struct {
		name          string
		hostNetwork   bool
		readinessPath string
	}{
		{"cni", false, ""},
		{"host network", true, ""},
		{"cni http probe", false, "/healthz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.hostNetwork)
			cfg := e.cfg
			cfg.StopOnExit = true
			e.startAgent(t, cfg)

			testenv.Eventually(t, "the node record", 0, func() bool {
				_, err := e.st.Get(context.Background(), store.NodeKey(node))
				return err == nil
			})
			t0 := time.Now()
			spec := e.spec("hello-00001")
			spec.ReadinessPath = tc.readinessPath
			e.place(t, "hello-00001-a", spec)
			inst := e.waitInstance(t, "hello-00001-a", running)
			t.Logf("placement to Running+Ready: %s", time.Since(t0))

			if kv, err := e.st.Get(context.Background(), store.NodeKey(node)); err != nil || kv.Lease == 0 {
				t.Errorf("node record: %+v, %v (want it on a lease)", kv, err)
			}
			if inst.Endpoint == "" || inst.ImageDigest == "" {
				t.Errorf("record lacks endpoint or digest: %+v", inst)
			}
			if tc.hostNetwork != (inst.ContainerIP == "") {
				t.Errorf("ContainerIP %q with host network %v", inst.ContainerIP, tc.hostNetwork)
			}
			if code, body := get(t, inst.Endpoint); code != 200 || body != "Hello kiln!\n" {
				t.Errorf("GET via queue-proxy: %d %q", code, body)
			}
			if code, _ := get(t, inst.Endpoint, queue.ProbeHeader, queue.ProbeValue); code != 200 {
				t.Errorf("queue probe: %d, want 200", code)
			}

			// The container sees PORT and K_* before the user's variables.
			ctr, err := e.ctd.LoadContainer(e.nsCtx(), "hello-00001-a")
			if err != nil {
				t.Fatal(err)
			}
			ociSpec, err := ctr.Spec(e.nsCtx())
			if err != nil {
				t.Fatal(err)
			}
			env := ociSpec.Process.Env
			for _, want := range []string{"K_REVISION=hello-00001", "K_SERVICE=hello", "K_CONFIGURATION=hello", "RESPONSE=Hello kiln!"} {
				if !slices.Contains(env, want) {
					t.Errorf("env lacks %q: %v", want, env)
				}
			}
			if !tc.hostNetwork && !slices.Contains(env, "PORT=8080") {
				t.Errorf("env lacks PORT=8080: %v", env)
			}
			if slices.Index(env, "K_REVISION=hello-00001") > slices.Index(env, "RESPONSE=Hello kiln!") {
				t.Errorf("user env before K_REVISION: %v", env)
			}

			t1 := time.Now()
			e.unplace(t, "hello-00001-a")
			e.waitGone(t, store.InstanceKey(node, "hello-00001-a"))
			t.Logf("placement removed to instance key gone: %s", time.Since(t1))
			if _, err := e.ctd.LoadContainer(e.nsCtx(), "hello-00001-a"); err == nil {
				t.Error("container still exists after the placement was removed")
			}
			if ents, _ := os.ReadDir(filepath.Join(cfg.StateDir, "cni", "netns")); len(ents) != 0 {
				t.Errorf("netns left behind: %v", ents)
			}
			if _, err := net.DialTimeout("tcp", inst.Endpoint, time.Second); err == nil {
				t.Error("queue-proxy still listening after stop")
			}
		})
	}
}

// The instance names hold "--", which containerd refuses in an ID: the
// containers get hashed IDs and are adopted and removed by their labels.
func TestReadoption(t *testing.T) {
	const keep, drop = "hello--keep-x7k2p", "hello--drop-x7k2p"
	if containerID(keep) == keep {
		t.Fatalf("containerID(%q) kept the name containerd refuses", keep)
	}
	e := newTestEnv(t, false)
	stop1 := e.startAgent(t, e.cfg) // StopOnExit false: containers survive
	e.place(t, keep, e.spec("hello-00001"))
	e.place(t, drop, e.spec("hello-00001"))
	before := e.waitInstance(t, keep, running)
	e.waitInstance(t, drop, running)
	pid := e.taskPID(t, containerID(keep))

	stop1()
	// The lease is revoked: the records go, the containers stay.
	e.waitGone(t, store.InstanceKey(node, keep))
	if got := e.taskPID(t, containerID(keep)); got != pid {
		t.Fatalf("task restarted while no agent ran: pid %d -> %d", pid, got)
	}
	e.unplace(t, drop)

	cfg := e.cfg
	cfg.StopOnExit = true
	t0 := time.Now()
	e.startAgent(t, cfg)
	after := e.waitInstance(t, keep, running)
	t.Logf("agent start to adopted instance ready: %s", time.Since(t0))
	if got := e.taskPID(t, containerID(keep)); got != pid {
		t.Errorf("adoption restarted the task: pid %d -> %d", pid, got)
	}
	if after.Endpoint != before.Endpoint {
		t.Errorf("endpoint changed on adoption: %s -> %s", before.Endpoint, after.Endpoint)
	}
	if code, body := get(t, after.Endpoint); code != 200 || body != "Hello kiln!\n" {
		t.Errorf("GET after adoption: %d %q", code, body)
	}
	// The container whose placement went away meanwhile is removed.
	testenv.Eventually(t, "the orphan container to be removed", 30*time.Second, func() bool {
		_, err := e.ctd.LoadContainer(e.nsCtx(), containerID(drop))
		return err != nil
	})
}

func TestTaskDiedIsRestartedInPlace(t *testing.T) {
	e := newTestEnv(t, false)
	cfg := e.cfg
	cfg.StopOnExit = true
	e.startAgent(t, cfg)
	e.place(t, "crashy", e.spec("hello-00001"))
	e.waitInstance(t, "crashy", running)
	pid := e.taskPID(t, "crashy")
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Restarted in place, as a kubelet restarts a pod's container: a new
	// task in the same container, counted on the record.
	inst := e.waitInstance(t, "crashy", func(i cluster.Instance) bool { return running(i) && i.RestartCount == 1 })
	if got := e.taskPID(t, "crashy"); got == pid {
		t.Errorf("task not restarted (pid %d)", got)
	}
	if code, body := get(t, inst.Endpoint); code != 200 || body != "Hello kiln!\n" {
		t.Errorf("GET after restart: %d %q", code, body)
	}
}

func TestImagePullFailure(t *testing.T) {
	e := newTestEnv(t, false)
	cfg := e.cfg
	cfg.StopOnExit = true
	e.startAgent(t, cfg)
	spec := e.spec("missing-00001")
	spec.Image = e.regURL + "/does/not/exist:latest"
	e.place(t, "missing", spec)
	inst := e.waitInstance(t, "missing", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	want := `Unable to fetch image "` + spec.Image + `": `
	if inst.Reason != "ImagePullFailed" || inst.Ready || !strings.HasPrefix(inst.Message, want) {
		t.Errorf("record %+v, want Failed/ImagePullFailed with a message starting %q", inst, want)
	}
}

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		name string
		spec cluster.InstanceSpec
		want []string
	}{
		{
			name: "order kept, K_* first",
			spec: cluster.InstanceSpec{Service: "s", Configuration: "c", Revision: "r",
				Env: map[string]string{"B": "2", "A": "1"}, EnvOrder: []string{"B", "A"}},
			want: []string{"PORT=9", "K_SERVICE=s", "K_CONFIGURATION=c", "K_REVISION=r", "B=2", "A=1"},
		},
		{
			name: "no order: sorted, empty K_SERVICE omitted",
			spec: cluster.InstanceSpec{Revision: "r", Env: map[string]string{"B": "2", "A": "1"}},
			want: []string{"PORT=9", "K_REVISION=r", "A=1", "B=2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, err := resolveEnv(context.Background(), newObjectCache(nil, ""), servingEnvSpec(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if got := containerEnv(tc.spec, 9, user); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLeaseLostReregisters(t *testing.T) {
	e := newTestEnv(t, false)
	cfg := e.cfg
	cfg.StopOnExit = true
	cfg.LeaseTTL = 2 * time.Second
	e.startAgent(t, cfg)
	e.place(t, "hello-a", e.spec("hello-00001"))
	e.waitInstance(t, "hello-a", running)
	ctx := context.Background()
	kv, err := e.st.Get(ctx, store.NodeKey(node))
	if err != nil {
		t.Fatal(err)
	}
	// Losing the lease (etcd partition, long pause) deletes every record.
	if err := e.st.RevokeLease(ctx, kv.Lease); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	testenv.Eventually(t, "node and instance records rewritten on a new lease", 30*time.Second, func() bool {
		n, nerr := e.st.Get(ctx, store.NodeKey(node))
		i, ierr := e.st.Get(ctx, store.InstanceKey(node, "hello-a"))
		return nerr == nil && ierr == nil && n.Lease != kv.Lease && i.Lease == n.Lease
	})
	t.Logf("records rewritten %s after the lease was revoked", time.Since(t0))
	inst := e.waitInstance(t, "hello-a", running)
	if code, _ := get(t, inst.Endpoint); code != 200 {
		t.Errorf("GET after re-registration: %d", code)
	}
}

// TestImageByDigest: an instance records its image pinned to the digest it
// resolved to (REPO@sha256:…), and a revision made from that reference, as
// kn makes one when it pins an update to the running image, pulls and runs.
func TestImageByDigest(t *testing.T) {
	e := newTestEnv(t, true)
	cfg := e.cfg
	cfg.StopOnExit = true
	e.startAgent(t, cfg)

	e.place(t, "hello-00001-a", e.spec("hello-00001"))
	first := e.waitInstance(t, "hello-00001-a", running)
	want, err := cluster.DigestReference(e.ref, first.ImageDigest)
	if err != nil || first.ImageDigest != want || !strings.Contains(want, "@sha256:") {
		t.Fatalf("imageDigest %q of %q, want %q (%v)", first.ImageDigest, e.ref, want, err)
	}

	spec := e.spec("hello-00002")
	spec.Image = first.ImageDigest
	e.place(t, "hello-00002-a", spec)
	second := e.waitInstance(t, "hello-00002-a", running)
	if second.ImageDigest != first.ImageDigest {
		t.Errorf("by-digest revision runs %q, want %q", second.ImageDigest, first.ImageDigest)
	}
	if code, body := get(t, second.Endpoint); code != 200 || body != "Hello kiln!\n" {
		t.Errorf("GET via queue-proxy: %d %q", code, body)
	}
}
