package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/api/errdefs"
)

// fakeNode is containerd and CNI in memory, for unit tests of the agent
// without root: a started serving container is an HTTP server on its
// instance's address answering "fake <id>", and each instance's network is
// a loopback address of its own (127.0.1.x).
type fakeNode struct {
	mu      sync.Mutex
	ctrs    map[string]*fakeCtr
	netIP   map[string]string // netns path → IP
	nextIP  int
	starts  []string                // container IDs in Start order
	specs   map[string]runtime.Spec // the last Spec each container ID was started with
	removes []string                // container IDs in Remove order
	downs   []string                // instances whose network was torn down
	// crashing containers log their line and exit with their code as soon
	// as they start, before serving anything.
	crashing map[string]fakeExit
	// sick containers answer /healthz with 500 and fail exec probes.
	sick map[string]bool
	// execs counts exec probes by container ID.
	execs map[string]int
	// restarts lists container IDs in Restart order.
	restarts []string
}

type fakeExit struct {
	code uint32
	log  string
}

type fakeCtr struct {
	labels map[string]string
	digest string
	app    net.Listener // nil when the container serves nothing
	dead   chan struct{}
	exit   uint32
}

var (
	_ containers = (*fakeNode)(nil)
	_ podNetwork = (*fakeNode)(nil)
)

func newFakeNode() *fakeNode {
	return &fakeNode{ctrs: map[string]*fakeCtr{}, netIP: map[string]string{}, specs: map[string]runtime.Spec{},
		sick: map[string]bool{}, execs: map[string]int{}}
}

func (f *fakeNode) Ping(context.Context) error { return nil }
func (f *fakeNode) Close() error               { return nil }

func (f *fakeNode) List(context.Context) ([]runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runtime.Container
	for id, c := range f.ctrs {
		out = append(out, runtime.Container{ID: id, Labels: c.labels, Running: c.running(), ImageDigest: c.digest})
	}
	return out, nil
}

func (f *fakeNode) EnsureImage(_ context.Context, ref string) (runtime.Image, error) {
	return runtime.Image{Digest: fakeDigest(ref)}, nil
}

// fakeDigest is the digest the fake resolves ref to: a well-formed sha256
// digest of the reference's text.
func fakeDigest(ref string) string {
	return digest.FromString(ref).String()
}

func (f *fakeNode) Unpacked(context.Context, runtime.Image) bool { return true }

func (f *fakeNode) Start(ctx context.Context, s runtime.Spec) (*runtime.Task, error) {
	// containerd refuses IDs it would not accept as file names.
	if err := identifiers.Validate(s.ID); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := f.Remove(ctx, s.ID, 0); err != nil {
		return nil, err
	}
	// The fake images run as root, as most images do.
	if sec := s.Security; sec.RunAsNonRoot && (sec.UID == nil || *sec.UID == 0) {
		return nil, fmt.Errorf("create container %s: %w", s.ID, runtime.ErrRunAsRoot)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs[s.ID] = s
	c := &fakeCtr{labels: s.Labels, digest: s.Image.Digest, dead: make(chan struct{})}
	if ex, ok := f.crashing[s.ID]; ok {
		if err := appendLog(s.LogPath, ex.log); err != nil {
			return nil, err
		}
		c.kill(ex.code)
		f.ctrs[s.ID] = c
		f.starts = append(f.starts, s.ID)
		return c.task(ctx, s.ID), nil
	}
	if port := s.Labels[labelPort]; port != "" {
		host := "127.0.0.1"
		if s.NetNSPath != "" {
			host = f.netIP[s.NetNSPath]
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("fake app of %s: %w", s.ID, err)
		}
		c.app = ln
		go f.serveFake(ln, s.ID)
	}
	f.ctrs[s.ID] = c
	f.starts = append(f.starts, s.ID)
	return c.task(ctx, s.ID), nil
}

func (f *fakeNode) Attach(ctx context.Context, id string) (*runtime.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok || !c.running() {
		return nil, fmt.Errorf("attach %s: %w", id, errdefs.ErrNotFound)
	}
	return c.task(ctx, id), nil
}

func (f *fakeNode) Remove(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok {
		return nil
	}
	c.kill(137)
	delete(f.ctrs, id)
	f.removes = append(f.removes, id)
	return nil
}

func (f *fakeNode) Setup(_ context.Context, id string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextIP++
	ns, ip := "/fake/netns/"+id, "127.0.1."+strconv.Itoa(f.nextIP)
	f.netIP[ns] = ip
	return ns, ip, nil
}

// The fake network has no isolation rules to keep.
func (f *fakeNode) Admit(context.Context, string, string, string) error { return nil }
func (f *fakeNode) OpenNamespaces(context.Context, []string) error      { return nil }
func (f *fakeNode) RemoveIsolation(context.Context) error               { return nil }

func (f *fakeNode) Teardown(_ context.Context, id, nsPath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.netIP, nsPath)
	f.downs = append(f.downs, id)
	return nil
}

// leave puts a running serving container as an earlier agent would have
// left it, listening where its labels say.
func (f *fakeNode) leave(id string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeCtr{labels: labels, digest: fakeDigest("left"), dead: make(chan struct{})}
	if port := labels[labelPort]; port != "" {
		host := "127.0.0.1"
		if ns := labels[labelNetNS]; ns != "" {
			host = labels[labelIP]
			f.netIP[ns] = host
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			panic(err)
		}
		c.app = ln
		go f.serveFake(ln, id)
	}
	f.ctrs[id] = c
}

// crashOnStart makes container id log line and exit with code whenever it
// starts.
func (f *fakeNode) crashOnStart(id string, code uint32, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashing == nil {
		f.crashing = map[string]fakeExit{}
	}
	f.crashing[id] = fakeExit{code, line}
}

// appendLog appends to a container's log as containerd's log file does.
func appendLog(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// crash ends a container's task as a crash would, leaving the container.
func (f *fakeNode) crash(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.ctrs[id]; ok {
		c.kill(139)
	}
}

func (f *fakeNode) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.ctrs[id]
	return ok
}

func (f *fakeNode) startCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countOf(f.starts, id)
}

// countOf is how often id appears in ids.
func countOf(ids []string, id string) int {
	n := 0
	for _, s := range ids {
		if s == id {
			n++
		}
	}
	return n
}

func (f *fakeNode) tornDown(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.downs, id)
}

// shutdown stops every fake app, as the end of the test does.
func (f *fakeNode) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		c.kill(0)
	}
}

func (c *fakeCtr) running() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// kill ends the task once; callers hold the node's lock.
func (c *fakeCtr) kill(code uint32) {
	if !c.running() {
		return
	}
	c.exit = code
	if c.app != nil {
		c.app.Close()
	}
	close(c.dead)
}

// task delivers the exit once, when the container dies or ctx ends (with
// an error), as containerd's Wait does.
func (c *fakeCtr) task(ctx context.Context, id string) *runtime.Task {
	exited := make(chan containerd.ExitStatus, 1)
	go func() {
		select {
		case <-c.dead:
			exited <- *containerd.NewExitStatus(c.exit, time.Now(), nil)
		case <-ctx.Done():
			exited <- *containerd.NewExitStatus(containerd.UnknownExitStatus, time.Now(), ctx.Err())
		}
	}()
	return &runtime.Task{ID: id, PID: 1, Exited: exited}
}

func (f *fakeNode) serveFake(ln net.Listener, id string) {
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && f.isSick(id) {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "fake "+id)
	}))
}

func (f *fakeNode) isSick(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sick[id]
}

// setSick makes container id fail (or pass again) its /healthz and exec
// probes.
func (f *fakeNode) setSick(id string, sick bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sick[id] = sick
}

// Exec passes (0) for a running container that is not sick, 1 for a sick
// one.
func (f *fakeNode) Exec(_ context.Context, id string, cmd []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok || !c.running() {
		return 0, fmt.Errorf("exec in %s: %w", id, errdefs.ErrNotFound)
	}
	if len(cmd) == 0 {
		return 0, fmt.Errorf("exec in %s: empty command", id)
	}
	f.execs[id]++
	if f.sick[id] {
		return 1, nil
	}
	return 0, nil
}

// Restart kills the container's task and starts a new one in it: a new
// app on the same address, healthy again.
func (f *fakeNode) Restart(ctx context.Context, id string, _ time.Duration, logPath string, labels map[string]string) (*runtime.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.ctrs[id]
	if !ok {
		return nil, fmt.Errorf("restart %s: %w", id, errdefs.ErrNotFound)
	}
	var addr string
	if old.app != nil {
		addr = old.app.Addr().String()
	}
	old.kill(137)
	f.sick[id] = false
	merged := map[string]string{}
	for k, v := range old.labels {
		merged[k] = v
	}
	for k, v := range labels {
		merged[k] = v
	}
	c := &fakeCtr{labels: merged, digest: old.digest, dead: make(chan struct{})}
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("fake app of %s: %w", id, err)
		}
		c.app = ln
		go f.serveFake(ln, id)
	}
	f.ctrs[id] = c
	f.restarts = append(f.restarts, id)
	return c.task(ctx, id), nil
}

func (f *fakeNode) restartCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.restarts {
		if s == id {
			n++
		}
	}
	return n
}

func (f *fakeNode) execCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.execs[id]
}

// spec is the Spec container id was last started with.
func (f *fakeNode) spec(id string) (runtime.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[id]
	return s, ok
}

// removeCount is how often the container id was removed.
func (f *fakeNode) removeCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countOf(f.removes, id)
}
