package activator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/activator"
)

// start runs an activator over st and returns its HTTP server.
func start(t *testing.T, st store.Store, opts activator.Options) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := activator.New(st, opts, testenv.Quiet())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" "+r.URL.Path+" rev="+r.Header.Get(v1.RevisionHeaderName))
	}))
	t.Cleanup(b.Close)
	return b
}

func putInstance(t *testing.T, st store.Store, inst, rev, endpoint string, ready bool) {
	t.Helper()
	b, _ := json.Marshal(cluster.Instance{Instance: inst, Node: "n1", Namespace: "default", Revision: rev,
		Phase: cluster.PhaseRunning, Ready: ready, Endpoint: endpoint})
	if _, err := st.Put(context.Background(), store.InstanceKey("n1", inst), b); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url, ns, rev string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if ns != "" {
		req.Header.Set(v1.NamespaceHeaderName, ns)
	}
	if rev != "" {
		req.Header.Set(v1.RevisionHeaderName, rev)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err) // not Fatal: also called from other goroutines
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A request for a revision without a ready instance waits; the instance
// record written later releases it to the backend.
func TestBufferedRequestForwardedWhenReady(t *testing.T) {
	st := testenv.StartEtcd(t)
	putRevision(t, st, "hello-00001", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 10 * time.Second})
	be := backend(t, "be1")

	// Not ready yet: still waits.
	putInstance(t, st, "hello-00001-abcde", "hello-00001", strings.TrimPrefix(be.URL, "http://"), false)
	type result struct {
		code int
		body string
		at   time.Time
	}
	res := make(chan result, 1)
	go func() {
		code, body := get(t, srv.URL+"/greet", "default", "hello-00001")
		res <- result{code, body, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-res:
		t.Fatalf("answered before any instance was ready: %d %q", r.code, r.body)
	default:
	}
	readyAt := time.Now()
	putInstance(t, st, "hello-00001-abcde", "hello-00001", strings.TrimPrefix(be.URL, "http://"), true)
	r := <-res
	if r.code != http.StatusOK || r.body != "be1 /greet rev=hello-00001" {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	if d := r.at.Sub(readyAt); d > time.Second {
		t.Errorf("released %v after ready", d)
	}
}

func TestTimeout(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "cold-00001", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 200 * time.Millisecond})
	begin := time.Now()
	code, body := get(t, srv.URL, "default", "cold-00001")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no ready instance of revision default/cold-00001") {
		t.Fatalf("got %d %q", code, body)
	}
	if d := time.Since(begin); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("answered after %v, want about the 200ms timeout", d)
	}
}

func TestMissingHeaders(t *testing.T) {
	srv := start(t, memstore.New(), activator.Options{})
	for _, tc := range []struct{ name, ns, rev string }{{"none", "", ""}, {"no namespace", "", "r"}, {"no revision", "default", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv.URL+"/x", tc.ns, tc.rev)
			if code != http.StatusBadRequest || !strings.Contains(body, "Knative-Serving-Revision and Knative-Serving-Namespace headers") {
				t.Fatalf("got %d %q", code, body)
			}
		})
	}
	if code, body := get(t, srv.URL+"/healthz", "", ""); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
}

func TestQueueFull(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "busy-00001", 0, 0)
	putRevision(t, st, "other-00001", 0, 0)
	srv := start(t, st, activator.Options{MaxQueue: 2, Timeout: 2 * time.Second})
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := get(t, srv.URL, "default", "busy-00001")
			codes <- code
		}()
	}
	time.Sleep(300 * time.Millisecond) // both are waiting now
	code, body := get(t, srv.URL, "default", "busy-00001")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "activator queue full for revision default/busy-00001") {
		t.Fatalf("third request: %d %q", code, body)
	}
	// Another revision has its own queue.
	if code, body := get(t, srv.URL, "default", "other-00001"); !strings.Contains(body, "no ready instance") {
		t.Fatalf("other revision: %d %q", code, body)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("waiting request ended with %d, want 503 after its timeout", c)
		}
	}
}

func TestRoundRobinAndNotReady(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "r", 0, 0)
	putRevision(t, st, "other", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 300 * time.Millisecond})
	b1, b2 := backend(t, "be1"), backend(t, "be2")
	putInstance(t, st, "r-aaaaa", "r", strings.TrimPrefix(b1.URL, "http://"), true)
	putInstance(t, st, "r-bbbbb", "r", strings.TrimPrefix(b2.URL, "http://"), true)
	putInstance(t, st, "other-ccccc", "other", strings.TrimPrefix(b2.URL, "http://"), true)
	seen := map[string]int{}
	defer func() {
		if t.Failed() {
			t.Logf("responses: %v", seen)
		}
	}()
	testenv.Eventually(t, "responses from both instances", 5*time.Second, func() bool {
		code, body := get(t, srv.URL, "default", "r")
		if code == http.StatusOK {
			seen[strings.Fields(body)[0]]++
		}
		return len(seen) >= 2 && seen["be1"]+seen["be2"] >= 10
	})
	if d := seen["be1"] - seen["be2"]; d < -2 || d > 2 {
		t.Errorf("uneven round robin: %v", seen)
	}
	// be1 turns not ready, be2 goes away: requests wait and time out.
	putInstance(t, st, "r-aaaaa", "r", strings.TrimPrefix(b1.URL, "http://"), false)
	if err := st.Delete(context.Background(), store.InstanceKey("n1", "r-bbbbb")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "no forwarding to instances that are not ready", 5*time.Second, func() bool {
		code, _ := get(t, srv.URL, "default", "r")
		return code == http.StatusServiceUnavailable
	})
	if code, body := get(t, srv.URL, "default", "other"); code != http.StatusOK || !strings.HasPrefix(body, "be2") {
		t.Fatalf("other revision: %d %q", code, body)
	}
}

// A revision the registry does not have is answered 404 at once, and the
// activator keeps nothing for the name: a client inventing names must not
// grow its state. Its own metrics do not mention the names either.
func TestUnknownRevisionNotFound(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "known-00001", 0, 0)
	srv := start(t, st, activator.Options{Timeout: 10 * time.Second})
	for i := range 50 {
		name := "ghost-" + strings.Repeat("x", i%5) + string(rune('a'+i%26))
		begin := time.Now()
		code, body := get(t, srv.URL, "default", name)
		if code != http.StatusNotFound || !strings.Contains(body, "revision default/"+name+" not found") {
			t.Fatalf("%s: got %d %q, want 404", name, code, body)
		}
		if d := time.Since(begin); d > time.Second {
			t.Fatalf("%s: answered after %v, want at once", name, d)
		}
	}
	code, body := get(t, srv.URL+"/metrics", "", "")
	if code != http.StatusOK || strings.Contains(body, "ghost") {
		t.Fatalf("metrics name unknown revisions: %d %q", code, body)
	}
}
