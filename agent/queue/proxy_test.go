package queue

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// startProxy serves a proxy for backend on a loopback port.
func startProxy(t *testing.T, backend *httptest.Server, cfg Config) (*Proxy, string) {
	t.Helper()
	cfg.Target = strings.TrimPrefix(backend.URL, "http://")
	p, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln) }()
	t.Cleanup(func() { p.Close() })
	return p, "http://" + ln.Addr().String()
}

func TestBreakerConcurrencyOne(t *testing.T) {
	var inFlight, maxSeen atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{ContainerConcurrency: 1})

	const n = 10
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("status %d, want 200", c)
		}
	}
	if got := maxSeen.Load(); got != 1 {
		t.Errorf("backend saw %d concurrent requests, want at most 1", got)
	}
	if got := p.Stats().Total; got != n {
		t.Errorf("Total = %d, want %d", got, n)
	}
}

func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer backend.Close()
	defer close(release)
	p, url := startProxy(t, backend, Config{ContainerConcurrency: 1, QueueDepth: 1})

	// First request holds the slot, second waits in the queue.
	for range 2 {
		go func() {
			if resp, err := http.Get(url); err == nil {
				resp.Body.Close()
			}
		}()
	}
	<-entered
	testenv.Eventually(t, "one request queued", 5*time.Second, func() bool { return p.Stats().Queued == 1 })
	if s := p.Stats(); s.InFlight != 1 || s.Queued != 1 {
		t.Fatalf("stats = %+v, want 1 in flight and 1 queued", s)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "overloaded") {
		t.Errorf("third request: %d %q, want 503 overloaded", resp.StatusCode, body)
	}
}

func TestProbeAndTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{Timeout: 200 * time.Millisecond})

	probe := func() int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set(ProbeHeader, ProbeValue)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name  string
		ready bool
		want  int
	}{
		{"not ready", false, http.StatusServiceUnavailable},
		{"ready", true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.SetReady(tc.ready)
			if got := probe(); got != tc.want {
				t.Errorf("probe = %d, want %d", got, tc.want)
			}
		})
	}
	if p.Stats().Total != 0 {
		t.Errorf("probes were counted as requests: %+v", p.Stats())
	}

	start := time.Now()
	resp, err := http.Get(url + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow request: %d, want 504", resp.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestDrainWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	}))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{})

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("in-flight request got %q, want done", body)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("new request accepted after Drain")
	}
}
