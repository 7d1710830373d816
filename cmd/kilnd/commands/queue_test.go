package commands

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/agent/queue"
)

// queueRig is kilnd queue run in-process in front of a container that
// holds every request until released.
type queueRig struct {
	addr    string // the proxy's host:port
	ctl     *queue.ControlClient
	release chan struct{}
	arrived chan struct{} // one per request the container got
	done    chan error    // runQueue's result
}

func startQueue(t *testing.T, fence time.Duration) *queueRig {
	t.Helper()
	r := &queueRig{release: make(chan struct{}), arrived: make(chan struct{}, 100), done: make(chan error, 1)}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.arrived <- struct{}{}
		<-r.release
		io.WriteString(w, "hello")
	}))
	t.Cleanup(app.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	// A deep directory: the socket's path is longer than a unix socket
	// address holds, as under a test's or a long state directory.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 40))
	sock := filepath.Join(dir, "default-hello-00001-deployment-abcde.sock")
	target := strings.TrimPrefix(app.URL, "http://")
	o := queueOptions{
		proxy:   queue.Config{Target: target, Timeout: 10 * time.Second, DrainDelay: 100 * time.Millisecond},
		control: queue.ControlConfig{Instance: "hello-1", Target: target, Fence: fence, DrainTimeout: 10 * time.Second},
		socket:  sock,
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { r.done <- runQueue(ctx, o, ln, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	r.ctl = queue.NewControlClient(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := r.ctl.State(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("control socket never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v, mode %v; want mode 0600", sock, err, fi.Mode().Perm())
	}
	return r
}

// get sends one request through the proxy; probe asks the proxy itself.
func (r *queueRig) get(probe bool) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.addr+"/", nil)
	if probe {
		req.Header.Set(queue.ProbeHeader, queue.ProbeValue)
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// inFlight starts one request and waits until the container holds it; its
// status (or -1 on error) arrives on the channel.
func (r *queueRig) inFlight(t *testing.T) <-chan int {
	t.Helper()
	out := make(chan int, 1)
	go func() {
		code, err := r.get(false)
		if err != nil {
			code = -1
		}
		out <- code
	}()
	select {
	case <-r.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the container")
	}
	return out
}

// refused reports whether a connection to the proxy is refused now.
func (r *queueRig) refused() bool {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func (r *queueRig) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("kilnd queue did not return")
		return nil
	}
}

func TestQueueControlAPI(t *testing.T) {
	r := startQueue(t, time.Minute)
	ctx := context.Background()
	st, err := r.ctl.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.Instance != "hello-1" || st.Ready || st.Draining || st.Port == 0 || !strings.HasSuffix(r.addr, ":"+strconv.Itoa(st.Port)) {
		t.Fatalf("state = %+v, want pid %d, instance hello-1, not ready, port of %s", st, os.Getpid(), r.addr)
	}
	if code, _ := r.get(true); code != http.StatusServiceUnavailable {
		t.Errorf("probe before ready: %d, want 503", code)
	}
	if err := r.ctl.SetReady(ctx, true); err != nil {
		t.Fatal(err)
	}
	if code, _ := r.get(true); code != http.StatusOK {
		t.Errorf("probe after ready: %d, want 200", code)
	}
	if st, _ := r.ctl.State(ctx); !st.Ready {
		t.Errorf("state after set ready: %+v, want ready", st)
	}
	// Two requests: one done, one still in flight.
	close(r.release)
	if code, err := r.get(false); code != http.StatusOK {
		t.Fatalf("request: %d %v", code, err)
	}
	rep, err := r.ctl.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RequestCount != 1 || rep.Created.IsZero() {
		t.Errorf("report = %+v, want 1 request and the creation time", rep)
	}
	if st, _ := r.ctl.State(ctx); st.Stats.Total != 1 {
		t.Errorf("stats = %+v, want 1 request in total", st.Stats)
	}
	if err := r.ctl.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("kilnd queue after stop: %v", err)
	}
	if !r.refused() {
		t.Error("proxy still accepts after stop")
	}
	if _, err := os.Stat(r.ctl.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	if err := r.ctl.SetReady(ctx, true); err == nil {
		t.Error("control API still answers after stop")
	}
}

// A drain lets the request in flight finish, then the process exits.
func TestQueueDrain(t *testing.T) {
	r := startQueue(t, time.Minute)
	ctx := context.Background()
	r.ctl.SetReady(ctx, true)
	res := r.inFlight(t)
	drained := make(chan error, 1)
	go func() { drained <- r.ctl.Drain(ctx) }()
	time.Sleep(300 * time.Millisecond) // past the drain delay
	if !r.refused() {
		t.Error("proxy still accepts while draining")
	}
	close(r.release)
	if code := <-res; code != http.StatusOK {
		t.Errorf("request in flight during the drain: %d, want 200", code)
	}
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("kilnd queue after drain: %v", err)
	}
}

// Without control requests for the fence timeout, the proxy stops
// accepting, lets its requests in flight finish and exits; control
// requests keep it serving.
func TestQueueFence(t *testing.T) {
	const fence = 400 * time.Millisecond
	r := startQueue(t, fence)
	ctx := context.Background()
	r.ctl.SetReady(ctx, true)
	// Heartbeats for a few fence periods: still serving.
	for range 8 {
		time.Sleep(fence / 4)
		if _, err := r.ctl.State(ctx); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	if r.refused() {
		t.Fatal("fenced although the agent kept calling")
	}
	res := r.inFlight(t)
	var refusedAfter atomic.Bool
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if r.refused() {
			refusedAfter.Store(true)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !refusedAfter.Load() {
		t.Fatal("proxy still accepts 10s after the agent went silent")
	}
	t.Logf("connections refused %v after the last control request (fence %v)", time.Since(start), fence)
	select {
	case err := <-r.done:
		t.Fatalf("kilnd queue exited (%v) with a request in flight", err)
	default:
	}
	close(r.release)
	if code := <-res; code != http.StatusOK {
		t.Errorf("request in flight at the fence: %d, want 200", code)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("kilnd queue after the fence: %v", err)
	}
}

// Bad flags are refused naming the flag.
func TestQueueFlags(t *testing.T) {
	base := []string{"kilnd", "queue", "--instance", "i", "--target", "127.0.0.1:1", "--control-socket", filepath.Join(t.TempDir(), "c.sock")}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"kilnd", "queue", "--target", "127.0.0.1:1", "--control-socket", "x", "--listen", "127.0.0.1:0"}, "--instance"},
		{append(slices.Clone(base), "--target", "nohostport", "--listen", "127.0.0.1:0"), "--target"},
		{append(slices.Clone(base), "--fence-timeout", "0s", "--listen", "127.0.0.1:0"), "--fence-timeout"},
		{append(slices.Clone(base), "--container-concurrency", "-1", "--listen", "127.0.0.1:0"), "--container-concurrency"},
		{slices.Clone(base), "--listen-fd or --listen"},
		{append(slices.Clone(base), "--listen-fd", "3", "--listen", "127.0.0.1:0"), "--listen-fd and --listen"},
		{append(slices.Clone(base), "--containerd-address", "/run/containerd/containerd.sock", "--listen", "127.0.0.1:0"), "--containerd-namespace"},
	} {
		err := NewApp().Run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: err = %v, want it refused naming %s", tc.args[2:], err, tc.flag)
		}
	}
}

// The agent starts its queue-proxies with its own --log-level and
// --log-format.
func TestQueueProcessesLogAsTheAgent(t *testing.T) {
	_ = NewApp().Run([]string{"kilnd", "--log-level", "debug", "--log-format", "json", "queue"}) // refused: no flags
	want := []string{"--log-level", "debug", "--log-format", "json"}
	if !slices.Equal(logArgs, want) {
		t.Errorf("logArgs = %v, want %v", logArgs, want)
	}
}
