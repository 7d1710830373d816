package queue

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/meter"
)

func TestProxyReportsProxiedRequests(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{})
	p.SetReady(true)
	p.Report(time.Now()) // start a fresh period
	do := func(hdr, val string) {
		req, _ := http.NewRequest("GET", url, nil)
		if hdr != "" {
			req.Header.Set(hdr, val)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("", "")
	do(meter.ProxyHeaderName, meter.ProxyHeaderValue)
	do(meter.ProxyHeaderName, meter.ProxyHeaderValue)
	do(ProbeHeader, ProbeValue)
	r := p.Report(time.Now())
	if r.RequestCount != 3 || r.ProxiedRequestCount != 2 {
		t.Errorf("report = %+v, want 3 requests of which 2 proxied", r)
	}
	if r.AverageConcurrency <= 0 || r.AverageConcurrency > 1 {
		t.Errorf("average concurrency %v of sequential requests, want in (0, 1]", r.AverageConcurrency)
	}
}

// Drain keeps serving for DrainDelay while the probe already says not ready.
func TestDrainDelayKeepsServing(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	p, url := startProxy(t, backend, Config{DrainDelay: 300 * time.Millisecond})
	p.SetReady(true)
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(t.Context()) }()
	deadline := time.Now().Add(5 * time.Second)
	for p.Ready() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
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
