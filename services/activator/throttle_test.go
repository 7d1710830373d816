package activator_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
	"github.com/kiln-serving/kiln/services/activator"
)

func putRevision(t *testing.T, st store.Store, name string, cc, timeoutSeconds int64) {
	t.Helper()
	r := v1.Revision{}
	r.Metadata.Namespace, r.Metadata.Name = "default", name
	r.Spec.ContainerConcurrency = &cc
	if timeoutSeconds > 0 {
		r.Spec.TimeoutSeconds = &timeoutSeconds
	}
	b, _ := json.Marshal(r)
	if _, err := st.Put(context.Background(), store.RegistryKey("serving.knative.dev", "revisions", "default", name), b); err != nil {
		t.Fatal(err)
	}
}

// counting is a backend that records the most requests it ever held at
// once, and holds each for hold.
type counting struct {
	srv          *httptest.Server
	cur, maxSeen atomic.Int64
	proxied      atomic.Int64
	served       atomic.Int64
}

func countingBackend(t *testing.T, hold time.Duration) *counting {
	t.Helper()
	c := &counting{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.cur.Add(1)
		for m := c.maxSeen.Load(); n > m && !c.maxSeen.CompareAndSwap(m, n); m = c.maxSeen.Load() {
		}
		if r.Header.Get(meter.ProxyHeaderName) == meter.ProxyHeaderValue {
			c.proxied.Add(1)
		}
		time.Sleep(hold)
		c.cur.Add(-1)
		c.served.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *counting) hostport() string { return strings.TrimPrefix(c.srv.URL, "http://") }

// containerConcurrency 1 over two instances: never two requests at once
// on one instance, every request served, load on both.
func TestContainerConcurrencyPerInstance(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "cc-00001", 1, 0)
	srv := start(t, st, activator.Options{Timeout: 20 * time.Second})
	b1, b2 := countingBackend(t, 20*time.Millisecond), countingBackend(t, 20*time.Millisecond)
	putInstance(t, st, "cc-00001-a", "cc-00001", b1.hostport(), true)
	putInstance(t, st, "cc-00001-b", "cc-00001", b2.hostport(), true)
	waitForwarding(t, srv.URL, "cc-00001")
	for _, b := range []*counting{b1, b2} {
		b.served.Store(0)
		b.proxied.Store(0)
	}

	const n = 30
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if code, body := get(t, srv.URL, "default", "cc-00001"); code != http.StatusOK {
				t.Errorf("got %d %q", code, body)
			}
		})
	}
	wg.Wait()
	for i, b := range []*counting{b1, b2} {
		if m := b.maxSeen.Load(); m != 1 {
			t.Errorf("instance %d saw %d concurrent requests, want 1", i, m)
		}
		if b.served.Load() == 0 {
			t.Errorf("instance %d got no request", i)
		}
		if b.proxied.Load() != b.served.Load() {
			t.Errorf("instance %d: %d of %d requests carried %s", i, b.proxied.Load(), b.served.Load(), meter.ProxyHeaderName)
		}
	}
	if got := b1.served.Load() + b2.served.Load(); got != n {
		t.Errorf("served %d, want %d", got, n)
	}
}

// waitForwarding waits until the activator forwards rev's requests.
func waitForwarding(t *testing.T, url, rev string) {
	t.Helper()
	testenv.Eventually(t, rev+" forwarded", 5*time.Second, func() bool {
		code, _ := get(t, url, "default", rev)
		return code == http.StatusOK
	})
}

// A revision's timeoutSeconds bounds the wait for an instance.
func TestRevisionTimeout(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "slow-00001", 0, 1)
	srv := start(t, st, activator.Options{Timeout: time.Hour})
	time.Sleep(100 * time.Millisecond) // let the revision arrive
	begin := time.Now()
	code, body := get(t, srv.URL, "default", "slow-00001")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no ready instance of revision default/slow-00001 after 1s") {
		t.Fatalf("got %d %q", code, body)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("answered after %v, want the revision's 1s", d)
	}
}

// An instance that refuses connections (just published, listener not up
// yet) does not lose the request: the activator retries until it answers.
func TestRetriesRefusedConnection(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "late-00001", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 10 * time.Second})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // refuse until the backend starts below
	putInstance(t, st, "late-00001-a", "late-00001", addr, true)

	res := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader("payload"))
		req.Header.Set(v1.NamespaceHeaderName, "default")
		req.Header.Set(v1.RevisionHeaderName, "late-00001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- string(b)
	}()
	time.Sleep(200 * time.Millisecond)
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "echo "+string(b))
	})}
	go be.Serve(lis)
	defer be.Close()
	if got := <-res; got != "echo payload" {
		t.Fatalf("got %q, want the body forwarded once the instance listened", got)
	}
}

// fakeAutoscaler answers pokes and records metric batches.
type fakeAutoscaler struct {
	pb.UnimplementedAutoscalerServer
	pokes   chan *pb.PokeRequest
	mu      sync.Mutex
	batches []*pb.MetricBatch
}

func (f *fakeAutoscaler) Poke(_ context.Context, r *pb.PokeRequest) (*pb.PokeResponse, error) {
	f.pokes <- r
	return &pb.PokeResponse{DesiredScale: 1}, nil
}

func (f *fakeAutoscaler) StreamMetrics(s grpc.ClientStreamingServer[pb.MetricBatch, pb.StreamMetricsResponse]) error {
	for {
		b, err := s.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.batches = append(f.batches, b)
		f.mu.Unlock()
	}
}

// A request for a revision at zero pokes the autoscaler at once, and the
// activator reports what it held.
func TestPokesAndReports(t *testing.T) {
	f := &fakeAutoscaler{pokes: make(chan *pb.PokeRequest, 10)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterAutoscalerServer(gs, f)
	go gs.Serve(lis)
	defer gs.Stop()
	leaders := func(ctx context.Context) <-chan string {
		c := make(chan string, 1)
		c <- lis.Addr().String()
		return c
	}
	st := memstore.New()
	putRevision(t, st, "zero-00001", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 10 * time.Second, Autoscaler: leaders, Identity: "act-1"})
	be := backend(t, "be1")

	res := make(chan int, 1)
	go func() { code, _ := get(t, srv.URL, "default", "zero-00001"); res <- code }()
	select {
	case p := <-f.pokes:
		if p.Namespace != "default" || p.Revision != "zero-00001" || p.Queued < 1 {
			t.Errorf("poke = %v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no poke")
	}
	putInstance(t, st, "zero-00001-a", "zero-00001", strings.TrimPrefix(be.URL, "http://"), true)
	if code := <-res; code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	testenv.Eventually(t, "a stat with the held request", 5*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, b := range f.batches {
			for _, s := range b.Stats {
				if b.Source == "activator/act-1" && s.Revision == "zero-00001" && s.RequestCount == 1 && s.AverageConcurrentRequests > 0 {
					return true
				}
			}
		}
		return false
	})
}

// An instance that dies with a request in flight (its connection broken
// before any answer) costs no GET: it goes once more, to the other
// instance. A POST is answered 502: it may have been acted on.
func TestReplaysIdempotentRequestOnBrokenConnection(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "dying-00001", 1, 0)
	srv := start(t, st, activator.Options{Timeout: 10 * time.Second})
	var hits atomic.Int64
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	t.Cleanup(dying.Close)
	live := countingBackend(t, 0)
	putInstance(t, st, "dying-00001-a", "dying-00001", strings.TrimPrefix(dying.URL, "http://"), true)
	putInstance(t, st, "dying-00001-b", "dying-00001", live.hostport(), true)

	send := func(method string) (int, string) {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("payload")
		}
		req, _ := http.NewRequest(method, srv.URL+"/", body)
		req.Header.Set(v1.NamespaceHeaderName, "default")
		req.Header.Set(v1.RevisionHeaderName, "dying-00001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for i := range 10 {
		if code, b := send(http.MethodGet); code != 200 || b != "ok" {
			t.Fatalf("GET %d: %d %q, want it served by the live instance", i, code, b)
		}
	}
	if hits.Load() == 0 {
		t.Fatal("no GET reached the dying instance: the test proves nothing")
	}
	hits.Store(0)
	failed := 0
	for range 10 {
		if code, _ := send(http.MethodPost); code != 200 {
			if code != http.StatusBadGateway {
				t.Errorf("POST answered %d, want 200 or 502", code)
			}
			failed++
		}
	}
	if n := hits.Load(); n == 0 || int64(failed) != n {
		t.Errorf("%d POSTs reached the dying instance and %d failed: each must fail, none be sent again", n, failed)
	}
}
