package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// An instance that refuses connections costs no request: each one sent to
// it goes to the other instance, and it is skipped from then on, before
// the xds server knows anything. Bodies survive the retry.
func TestConnectFailureRetriedOnAnotherEndpoint(t *testing.T) {
	live := backend(t, "live", 0)
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := startEnv(t, func(st store.Store) {
		putRoute(t, st, "default", "hello", "http://"+helloHost, servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
		putInstance(t, st, "default", "hello-00001", "i1", dead)
		putInstance(t, st, "default", "hello-00001", "i2", hostport(live))
	})
	e.eventually(t, "both endpoints", helloHost, func(r reply) bool { return r.body == "live" })
	// Forget what the wait taught the gateway: the next requests meet the
	// dead instance afresh.
	e.gw.outliers.mu.Lock()
	e.gw.outliers.until = map[string]time.Time{}
	e.gw.outliers.mu.Unlock()

	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader("payload"))
		req.Host = helloHost
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "live" {
			t.Fatalf("request %d: %d %q, want every request served by the live instance", i, resp.StatusCode, b)
		}
	}
	if !e.gw.outliers.ejected(dead) {
		t.Errorf("%s refused connections but is not ejected", dead)
	}
}

func TestOutlierEjectionExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	o := newOutliers()
	o.now = func() time.Time { return now }
	u := &upstream{endpoints: []string{"a:1", "b:1"}}
	o.eject("a:1")
	for range 4 {
		if ep := u.pick(o, nil); ep != "b:1" {
			t.Fatalf("pick = %s while a:1 is ejected", ep)
		}
	}
	if ep := u.pick(o, []string{"b:1"}); ep != "a:1" {
		t.Errorf("pick with b:1 tried = %q, want the ejected a:1 rather than nothing", ep)
	}
	if ep := u.pick(o, []string{"a:1", "b:1"}); ep != "" {
		t.Errorf("pick with all tried = %q", ep)
	}
	now = now.Add(ejectFor)
	seen := map[string]bool{}
	for range 4 {
		seen[u.pick(o, nil)] = true
	}
	if !seen["a:1"] || !seen["b:1"] {
		t.Errorf("after %v both endpoints should take turns again, saw %v", ejectFor, seen)
	}
}

// An upstream that dies with a request in flight (a killed activator or
// queue-proxy) costs no GET: the request, which may be repeated, goes once
// more to another endpoint. A POST is not sent again: its first attempt
// may have been acted on.
func TestBrokenConnectionRetriedForIdempotentRequests(t *testing.T) {
	live := backend(t, "live", 0)
	var hits atomic.Int64
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	t.Cleanup(dying.Close)
	e := startEnv(t, func(st store.Store) {
		putRoute(t, st, "default", "hello", "http://"+helloHost, servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
		putInstance(t, st, "default", "hello-00001", "i1", hostport(dying))
		putInstance(t, st, "default", "hello-00001", "i2", hostport(live))
	})
	e.eventually(t, "both endpoints", helloHost, func(r reply) bool { return r.body == "live" })

	hits.Store(0)
	for i := range 10 {
		r := e.get(t, helloHost, nil)
		if r.status != 200 || r.body != "live" {
			t.Fatalf("GET %d: %d %q, want it answered by the live instance", i, r.status, r.body)
		}
	}
	if hits.Load() == 0 {
		t.Fatal("no GET reached the dying instance: the test proves nothing")
	}

	hits.Store(0)
	failed := 0
	for range 10 {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader("payload"))
		req.Host = helloHost
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
		}
	}
	if n := hits.Load(); n == 0 || int64(failed) != n {
		t.Errorf("%d POSTs reached the dying instance and %d failed: each must fail, none be sent again", n, failed)
	}
}
