package queue

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func TestProxyReportsProxiedRequests(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	// Each request holds the app for 10ms of the fake clock.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clock.Advance(10 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	p, _ := startProxy(t, backend, Config{Now: clock.Now})
	p.SetReady(true)
	p.Report(clock.Now()) // start a fresh period
	do := func(hdr, val string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if hdr != "" {
			req.Header.Set(hdr, val)
		}
		// Served in line rather than over a connection: a client has its
		// response before the proxy counts the request out, so requests
		// sent back to back would overlap in the meter by a scheduler-
		// dependent sliver.
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %q", hdr, rec.Code, rec.Body)
		}
		clock.Advance(10 * time.Millisecond) // idle between requests
	}
	do("", "")
	do(meter.ProxyHeaderName, meter.ProxyHeaderValue)
	do(meter.ProxyHeaderName, meter.ProxyHeaderValue)
	do(ProbeHeader, ProbeValue)
	r := p.Report(clock.Now())
	if r.RequestCount != 3 || r.ProxiedRequestCount != 2 {
		t.Errorf("report = %+v, want 3 requests of which 2 proxied", r)
	}
	if r.AverageConcurrency <= 0 || r.AverageConcurrency > 1 {
		t.Errorf("average concurrency %v of sequential requests, want in (0, 1]", r.AverageConcurrency)
	}
	// Three requests of 10ms in a 70ms period, two of them proxied.
	if want := 30.0 / 70; math.Abs(r.AverageConcurrency-want) > 1e-9 || math.Abs(r.AverageProxiedConcurrency-20.0/70) > 1e-9 {
		t.Errorf("report = %+v, want average concurrency %v (proxied %v)", r, want, 20.0/70)
	}
}

// fakeClock moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Drain keeps serving for DrainDelay while the probe already says not ready.
func TestDrainDelayKeepsServing(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{DrainDelay: 300 * time.Millisecond})
	p.SetReady(true)
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(t.Context()) }()
	testenv.Eventually(t, "the probe to turn not ready", 5*time.Second, func() bool { return !p.Ready() })
	if p.Ready() {
		t.Fatal("probe still ready after Drain began")
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("request during the drain delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("request during the drain delay: %d, want 200", resp.StatusCode)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
}
