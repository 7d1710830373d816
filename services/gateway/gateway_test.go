package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/xds"
)

// backend stands in for a queue-proxy: it names itself and echoes what the
// edge added.
func backend(t *testing.T, name string, delay time.Duration) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Revision", r.Header.Get(xds.HeaderRevision))
		w.Header().Set("X-Seen-Namespace", r.Header.Get(xds.HeaderNamespace))
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-XFP", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Forwarded", strings.Join(r.Header.Values("Forwarded"), " | "))
		w.Header().Set("X-Seen-Internal", fmt.Sprintf("rev=%q ns=%q proxy=%q probe=%q",
			r.Header.Values(xds.HeaderRevision), r.Header.Values(xds.HeaderNamespace),
			r.Header.Values("K-Proxy-Request"), r.Header.Values("K-Network-Probe")))
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func pct(p int64) *int64 { return &p }

func putRoute(t *testing.T, st store.Store, ns, name, url string, traffic ...servingv1.TrafficTarget) {
	t.Helper()
	r := servingv1.Route{Metadata: metav1.ObjectMeta{Namespace: ns, Name: name}}
	r.Status.URL = url
	r.Status.Traffic = traffic
	testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "routes", ns, name), r)
}

func putInstance(t *testing.T, st store.Store, ns, rev, id, endpoint string) {
	t.Helper()
	testenv.PutJSON(t, st, store.InstanceKey("node-a", id), cluster.Instance{
		Instance: id, Node: "node-a", Namespace: ns, Revision: rev, Phase: cluster.PhaseRunning, Ready: true, Endpoint: endpoint,
	})
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// env is an etcd store, an xds server over it and a gateway connected to it.
type env struct {
	st  store.Store
	gw  *Gateway
	url string // the gateway's base URL
}

func startEnv(t *testing.T, seed func(st store.Store)) *env {
	t.Helper()
	st := testenv.StartEtcd(t)
	seed(st)
	ctx, cancel := context.WithCancel(context.Background())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A route's timeout is its revision's: the tests here check that the
	// gateway enforces what xds says, without the queue-proxy's grace.
	srv := xds.NewServer(st, xds.Options{HTTPListenAddress: "127.0.0.1", HTTPPort: uint32(testenv.FreePort(t)), InternalPort: uint32(testenv.FreePort(t)), HTTPSPort: uint32(testenv.FreePort(t)),
		RouteTimeoutGrace: time.Nanosecond}, testenv.Logger())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx, lis) }()

	gw := New(Config{XDSAddresses: []string{lis.Addr().String()}, NodeID: "test-edge", ListenHost: "127.0.0.1", AdminListen: "127.0.0.1:0"}, testenv.Logger())
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for _, c := range []chan error{gwDone, srvDone} {
			select {
			case err := <-c:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("run did not return")
			}
		}
	})
	select {
	case <-gw.Ready():
	case err := <-gwDone:
		t.Fatalf("gateway ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not ready")
	}
	return &env{st: st, gw: gw, url: "http://" + gw.Addr().String()}
}

type reply struct {
	status int
	body   string
	header http.Header
}

func (e *env) get(t *testing.T, host string, hdr map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/path?q=1", nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}
}

// eventually retries get until ok holds: config reaches the edge
// asynchronously.
func (e *env) eventually(t *testing.T, what, host string, ok func(reply) bool) reply {
	t.Helper()
	var r reply
	testenv.EventuallyNil(t, 0, func() error {
		if r = e.get(t, host, nil); ok(r) {
			return nil
		}
		return fmt.Errorf("%s: last reply %d %q", what, r.status, r.body)
	})
	return r
}

const (
	helloHost = "hello.default.example.com"
	tagHost   = "next-hello.default.example.com"
	coldHost  = "cold.default.example.com"
	slowHost  = "slow.default.example.com"
)

func TestGateway(t *testing.T) {
	rev1, rev2, rev1b := backend(t, "rev1", 0), backend(t, "rev2", 0), backend(t, "rev1b", 0)
	slow := backend(t, "slow", 3*time.Second)
	e := startEnv(t, func(st store.Store) {
		putRoute(t, st, "default", "hello", "http://"+helloHost,
			servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(50)},
			servingv1.TrafficTarget{RevisionName: "hello-00002", Percent: pct(50)},
			servingv1.TrafficTarget{Tag: "next", RevisionName: "hello-00003", Percent: pct(0), URL: "http://" + tagHost},
		)
		putInstance(t, st, "default", "hello-00001", "i1", hostport(rev1))
		putInstance(t, st, "default", "hello-00002", "i2", hostport(rev2))
		putInstance(t, st, "default", "hello-00003", "i3", hostport(rev2))
		putRoute(t, st, "default", "cold", "http://"+coldHost, servingv1.TrafficTarget{RevisionName: "cold-00001", Percent: pct(100)})
		putRoute(t, st, "default", "slow", "http://"+slowHost, servingv1.TrafficTarget{RevisionName: "slow-00001", Percent: pct(100)})
		one := int64(1)
		testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "revisions", "default", "slow-00001"),
			servingv1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "slow-00001"}, Spec: servingv1.RevisionSpec{TimeoutSeconds: &one}})
		putInstance(t, st, "default", "slow-00001", "i4", hostport(slow))
	})

	t.Run("client-sent internal headers are dropped", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/", nil)
		req.Host = tagHost
		for _, h := range xds.InternalHeaders {
			req.Header.Add(h, "spoofed")
			req.Header.Add(h, "spoofed-again")
		}
		req.Header.Set(xds.HeaderNamespace, "kube-system")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The revision headers are the weighted cluster's, once each.
		want := `rev=["hello-00003"] ns=["default"] proxy=[] probe=[]`
		if got := resp.Header.Get("X-Seen-Internal"); resp.StatusCode != 200 || got != want {
			t.Fatalf("%d: upstream saw %s, want %s", resp.StatusCode, got, want)
		}
	})

	t.Run("host routing and added headers", func(t *testing.T) {
		// A client cannot pick the revision by sending the header itself.
		r := e.get(t, tagHost, map[string]string{xds.HeaderRevision: "spoofed", "X-Forwarded-For": "203.0.113.9",
			"Forwarded": "for=203.0.113.9;proto=https"})
		if r.status != 200 || r.body != "rev2" {
			t.Fatalf("tag host: %d %q", r.status, r.body)
		}
		want := map[string]string{
			"X-Seen-Revision":  "hello-00003",
			"X-Seen-Namespace": "default",
			"X-Seen-Host":      tagHost,
			"X-Seen-XFF":       "203.0.113.9, 127.0.0.1",
			"X-Seen-XFP":       "http",
			"X-Seen-Forwarded": "for=203.0.113.9;proto=https, for=127.0.0.1;proto=http",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		// The host:port form the client sends on a non-default port.
		port := e.gw.Addr().(*net.TCPAddr).Port
		if r := e.get(t, fmt.Sprintf("%s:%d", helloHost, port), nil); r.status != 200 || (r.body != "rev1" && r.body != "rev2") {
			t.Errorf("host:port: %d %q", r.status, r.body)
		}
		// Unlisted port: the gateway falls back to the bare host.
		if r := e.get(t, helloHost+":1234", nil); r.status != 200 {
			t.Errorf("host with unlisted port: %d %q", r.status, r.body)
		}
	})

	t.Run("50/50 split", func(t *testing.T) {
		counts := map[string]int{}
		const n = 400
		for range n {
			r := e.get(t, helloHost, nil)
			if r.status != 200 {
				t.Fatalf("status %d %q", r.status, r.body)
			}
			if r.header.Get("X-Seen-Revision") != map[string]string{"rev1": "hello-00001", "rev2": "hello-00002"}[r.body] {
				t.Fatalf("backend %s saw revision header %q", r.body, r.header.Get("X-Seen-Revision"))
			}
			counts[r.body]++
		}
		for _, b := range []string{"rev1", "rev2"} {
			if c := counts[b]; c < n*40/100 || c > n*60/100 {
				t.Errorf("%s got %d of %d requests, want 40%%-60%%", b, c, n)
			}
		}
		t.Logf("split: %v", counts)
	})

	t.Run("unknown host is an empty 404", func(t *testing.T) {
		r := e.get(t, "nope.example.com", nil)
		if r.status != 404 || r.body != "" {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})

	t.Run("no endpoints is 503 no healthy upstream", func(t *testing.T) {
		r := e.get(t, coldHost, nil)
		if r.status != 503 || r.body != "no healthy upstream" {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})

	t.Run("route timeout is 504", func(t *testing.T) {
		start := time.Now()
		r := e.get(t, slowHost, nil)
		if r.status != 504 || r.body != "upstream request timeout" {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if d := time.Since(start); d < time.Second || d > 2500*time.Millisecond {
			t.Errorf("timed out after %v, want about the revision's 1s", d)
		}
	})

	t.Run("config updates apply", func(t *testing.T) {
		// The cold revision gets an instance: endpoints flow without a
		// route change.
		start := time.Now()
		putInstance(t, e.st, "default", "cold-00001", "i5", hostport(rev1b))
		e.eventually(t, "cold revision reachable", coldHost, func(r reply) bool { return r.status == 200 && r.body == "rev1b" })
		t.Logf("endpoint change store put -> served: %v", time.Since(start))

		// An instance moves: the old endpoint disappears from rotation.
		putInstance(t, e.st, "default", "hello-00002", "i2", hostport(rev1b))
		e.eventually(t, "moved endpoint", helloHost, func(r reply) bool { return r.body == "rev1b" })
		for range 50 {
			if r := e.get(t, helloHost, nil); r.body == "rev2" {
				t.Fatal("old endpoint still in rotation")
			}
		}

		// A new route and revision arrive together; the gateway waits for
		// the whole config, so the very first answer is already right.
		putInstance(t, e.st, "default", "new-00001", "i6", hostport(rev2))
		putRoute(t, e.st, "default", "new", "http://new.default.example.com", servingv1.TrafficTarget{RevisionName: "new-00001", Percent: pct(100)})
		r := e.eventually(t, "new route", "new.default.example.com", func(r reply) bool { return r.status != 404 })
		if r.status != 200 || r.body != "rev2" {
			t.Errorf("first answer from a new route: %d %q, want 200 rev2", r.status, r.body)
		}

		// Deleting the route removes the host.
		if err := e.st.Delete(context.Background(), store.RegistryKey("serving.knative.dev", "routes", "default", "new")); err != nil {
			t.Fatal(err)
		}
		e.eventually(t, "route removed", "new.default.example.com", func(r reply) bool { return r.status == 404 })
	})

	t.Run("per-request overhead", func(t *testing.T) {
		const n = 300
		measure := func(url, host string) time.Duration {
			start := time.Now()
			for range n {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return time.Since(start) / n
		}
		measure(rev1.URL, helloHost) // warm connections
		direct := measure(rev1.URL, helloHost)
		via := measure(e.url+"/", tagHost)
		t.Logf("sequential GET latency: direct %v, via gateway %v, overhead %v", direct, via, via-direct)
	})
}

// TestGatewayReconnects restarts the xds server: the gateway keeps serving
// its last config meanwhile, reconnects, and picks up what changed.
func TestGatewayReconnects(t *testing.T) {
	rev1, rev2 := backend(t, "rev1", 0), backend(t, "rev2", 0)
	st := testenv.StartEtcd(t)
	putRoute(t, st, "default", "hello", "http://"+helloHost, servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
	putInstance(t, st, "default", "hello-00001", "i1", hostport(rev1))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	opts := xds.Options{HTTPListenAddress: "127.0.0.1", HTTPPort: uint32(testenv.FreePort(t)), InternalPort: uint32(testenv.FreePort(t)), HTTPSPort: uint32(testenv.FreePort(t))}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- xds.NewServer(st, opts, testenv.Logger()).Run(srvCtx, lis) }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw := New(Config{XDSAddresses: []string{addr}, NodeID: "edge", ListenHost: "127.0.0.1"}, testenv.Logger())
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	e := &env{st: st, gw: gw, url: "http://" + gw.Addr().String()}
	if r := e.get(t, helloHost, nil); r.body != "rev1" {
		t.Fatalf("before restart: %d %q", r.status, r.body)
	}

	stopSrv()
	<-srvDone
	putInstance(t, st, "default", "hello-00001", "i1", hostport(rev2))
	if r := e.get(t, helloHost, nil); r.body != "rev1" {
		t.Fatalf("while xds is down the last config must keep serving: %d %q", r.status, r.body)
	}

	lis2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx2, stopSrv2 := context.WithCancel(context.Background())
	defer stopSrv2()
	go func() { srvDone <- xds.NewServer(st, opts, testenv.Logger()).Run(srvCtx2, lis2) }()
	e.eventually(t, "config from the restarted server", helloHost, func(r reply) bool { return r.body == "rev2" })

	cancel()
	if err := <-gwDone; err != nil {
		t.Errorf("gateway Run: %v", err)
	}
	stopSrv2()
	<-srvDone
}

// TestGatewayFailsOverBetweenXDSReplicas: with several xds addresses the
// gateway starts past one that is down, and when the replica it follows
// stops, takes what changed from another; the failover time is printed.
func TestGatewayFailsOverBetweenXDSReplicas(t *testing.T) {
	rev1, rev2 := backend(t, "rev1", 0), backend(t, "rev2", 0)
	st := testenv.StartEtcd(t)
	putRoute(t, st, "default", "hello", "http://"+helloHost, servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
	putInstance(t, st, "default", "hello-00001", "i1", hostport(rev1))

	opts := xds.Options{HTTPListenAddress: "127.0.0.1", HTTPPort: uint32(testenv.FreePort(t)), InternalPort: uint32(testenv.FreePort(t)), HTTPSPort: uint32(testenv.FreePort(t))}
	type replica struct {
		addr string
		stop context.CancelFunc
		done chan error
	}
	start := func() *replica {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{addr: lis.Addr().String(), stop: cancel, done: make(chan error, 1)}
		go func() { r.done <- xds.NewServer(st, opts, testenv.Logger()).Run(ctx, lis) }()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	a, b := start(), start()
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw := New(Config{XDSAddresses: []string{dead, a.addr, b.addr}, NodeID: "edge", ListenHost: "127.0.0.1"}, testenv.Logger())
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready with the first xds address down")
	}
	e := &env{st: st, gw: gw, url: "http://" + gw.Addr().String()}
	if r := e.get(t, helloHost, nil); r.body != "rev1" {
		t.Fatalf("first config: %d %q", r.status, r.body)
	}

	// The gateway follows a (dead was skipped); stop it and change the
	// route's endpoints: only b can tell.
	a.stop()
	<-a.done
	a.done <- nil // for the cleanup
	stopped := time.Now()
	putInstance(t, st, "default", "hello-00001", "i1", hostport(rev2))
	e.eventually(t, "config from the other replica", helloHost, func(r reply) bool { return r.body == "rev2" })
	t.Logf("xds failover: the change reached the gateway %v after its replica stopped", time.Since(stopped).Round(time.Millisecond))

	cancel()
	if err := <-gwDone; err != nil {
		t.Errorf("gateway Run: %v", err)
	}
}
