package queue

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
)

// tlsPKI issues the agent's (server) and callers' certificates of one CA.
func tlsPKI(tb testing.TB) func(role, name string) pki.Files {
	ca, _, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	return func(role, name string) pki.Files {
		f, err := ca.IssueFiles(dir, role+name, pki.Identity{Role: role, Name: name}, nil, time.Hour, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		return f
	}
}

// startTLSProxy serves a queue-proxy for backend with mutual TLS (callers
// allowed by check) and returns its host:port.
func startTLSProxy(tb testing.TB, backend *httptest.Server, server pki.Files, check mtls.Check) string {
	cfg, err := mtls.ServerTLS(server)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := New(Config{Target: strings.TrimPrefix(backend.URL, "http://"), TLS: cfg, Check: check}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	p.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = p.Serve(ln) }()
	tb.Cleanup(func() { p.Close() })
	return ln.Addr().String()
}

func roleClient(tb testing.TB, f pki.Files) *http.Client {
	cfg, err := mtls.ClientTLS(f, pki.RoleAgent)
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}}
}

// A queue-proxy under mutual TLS serves edges and activators only.
func TestQueueProxyRoleCheck(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	issue := tlsPKI(t)
	addr := startTLSProxy(t, backend, issue(pki.RoleAgent, "n1"), pki.Allow(pki.RoleGateway, pki.RoleActivator))
	for _, tc := range []struct {
		role string
		want int
	}{{pki.RoleGateway, 200}, {pki.RoleActivator, 200}, {pki.RoleAgent, http.StatusForbidden}, {pki.RoleXDS, http.StatusForbidden}} {
		resp, err := roleClient(t, issue(tc.role, "")).Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", tc.role, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.role, resp.StatusCode, tc.want)
		}
	}
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %d, want refused", resp.StatusCode)
		}
	}
	if _, err := New(Config{Target: "x:1", TLS: &tls.Config{}}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("TLS without a check accepted")
	}
}

// BenchmarkMutualTLS is the cost of mutual TLS on the data path's hop into
// a queue-proxy (what an edge or activator pays), plain against TLS 1.3
// with client certificates in the same run: sequential requests on a kept
// connection (latency), parallel requests (throughput), and a new
// connection per request (the handshake).
func BenchmarkMutualTLS(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "Hello Serverless!\n") }))
	defer backend.Close()
	issue := tlsPKI(b)
	plainAddr := startProxy2(b, backend)
	tlsAddr := startTLSProxy(b, backend, issue(pki.RoleAgent, "n1"), pki.Allow(pki.RoleGateway))
	gw := issue(pki.RoleGateway, "")

	type mode struct {
		name   string
		url    string
		client func(keepAlive bool) *http.Client
	}
	modes := []mode{
		{"plain", "http://" + plainAddr + "/", func(ka bool) *http.Client {
			return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableKeepAlives: !ka}}
		}},
		{"mtls", "https://" + tlsAddr + "/", func(ka bool) *http.Client {
			c := roleClient(b, gw)
			c.Transport.(*http.Transport).DisableKeepAlives = !ka
			return c
		}},
	}
	get := func(b *testing.B, c *http.Client, url string) {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
	}
	nsPerOp := map[string]float64{}
	for _, kind := range []string{"sequential", "parallel", "new-conn"} {
		for _, m := range modes {
			b.Run(kind+"/"+m.name, func(b *testing.B) {
				c := m.client(kind != "new-conn")
				defer c.CloseIdleConnections()
				// Warm as many connections as the run will use, so the
				// kept-alive kinds measure requests, not handshakes.
				var warm sync.WaitGroup
				for range 16 {
					warm.Go(func() { get(b, c, m.url) })
				}
				warm.Wait()
				b.ResetTimer()
				start := time.Now()
				if kind == "parallel" {
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							get(b, c, m.url)
						}
					})
				} else {
					for range b.N {
						get(b, c, m.url)
					}
				}
				nsPerOp[kind+"/"+m.name] = float64(time.Since(start).Nanoseconds()) / float64(b.N)
			})
		}
	}
	for _, kind := range []string{"sequential", "parallel", "new-conn"} {
		p, t := nsPerOp[kind+"/plain"], nsPerOp[kind+"/mtls"]
		if p == 0 || t == 0 {
			continue
		}
		if kind == "parallel" {
			fmt.Printf("queue-proxy mTLS cost, parallel: throughput plain %.0f req/s, mTLS %.0f req/s (%.2fx)\n", 1e9/p, 1e9/t, p/t)
			continue
		}
		fmt.Printf("queue-proxy mTLS cost, %s: latency plain %.0fµs, mTLS %.0fµs (%.2fx, +%.0fµs)\n", kind, p/1e3, t/1e3, t/p, (t-p)/1e3)
	}
}

// startProxy2 is startProxy for benchmarks: a ready plain queue-proxy.
func startProxy2(b *testing.B, backend *httptest.Server) string {
	p, err := New(Config{Target: strings.TrimPrefix(backend.URL, "http://")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	p.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.Serve(ln) }()
	b.Cleanup(func() { p.Close() })
	return ln.Addr().String()
}
