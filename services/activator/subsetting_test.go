package activator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/activator"
)

// registered lists the activators/ records.
func registered(t *testing.T, st store.Store) []cluster.Activator {
	t.Helper()
	kvs, _, err := st.List(context.Background(), store.ActivatorsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []cluster.Activator
	for _, kv := range kvs {
		var a cluster.Activator
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func metricsOf(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Two activators register, each takes half of an instance's
// containerConcurrency, so a load split over both never puts more than
// containerConcurrency requests into the instance; when one goes, its
// record goes with it and the other takes the whole instance.
func TestSubsetting(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "sub-00001", 4, 0)
	b := countingBackend(t, 30*time.Millisecond)
	putInstance(t, st, "sub-00001-a", "sub-00001", b.hostport(), true)

	ctx1, stop1 := context.WithCancel(context.Background())
	a1 := activator.New(st, activator.Options{Identity: "act-1", Advertise: "10.0.0.1:8012"}, testenv.Quiet())
	done1 := make(chan struct{})
	go func() {
		defer close(done1)
		if err := a1.Run(ctx1); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { stop1(); <-done1 })
	srv2 := start(t, st, activator.Options{Identity: "act-2", Advertise: "10.0.0.2:8012"})
	hs1 := httptest.NewServer(a1.Handler())
	t.Cleanup(hs1.Close)
	srv1 := hs1.URL

	testenv.Eventually(t, "two activators registered", 0, func() bool { return len(registered(t, st)) == 2 })
	for _, u := range []string{srv1, srv2.URL} {
		testenv.Eventually(t, u+" sees two activators", 0, func() bool {
			return strings.Contains(metricsOf(t, u), "kiln_activator_peers 2\n")
		})
	}
	if got := registered(t, st); got[0].Address != "10.0.0.1:8012" || got[1].Address != "10.0.0.2:8012" {
		t.Fatalf("records %+v, want the advertised addresses", got)
	}

	// 24 concurrent requests, half through each activator.
	var wg sync.WaitGroup
	errs := make(chan string, 24)
	for i := range 24 {
		u := srv1
		if i%2 == 1 {
			u = srv2.URL
		}
		wg.Go(func() {
			if code, body := get(t, u+"/", "default", "sub-00001"); code != 200 {
				errs <- fmt.Sprintf("%d %s", code, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request failed: %s", e)
	}
	if m := b.maxSeen.Load(); m > 4 {
		t.Fatalf("the instance saw %d requests at once, over containerConcurrency 4", m)
	}
	for _, u := range []string{srv1, srv2.URL} {
		if m := metricsOf(t, u); !strings.Contains(m, `kiln_activator_requests_total{namespace="default",revision="sub-00001"} 12`) {
			t.Errorf("%s metrics:\n%s", u, m)
		}
	}

	// The first one stops: its record goes, the second holds it all.
	stop1()
	<-done1
	testenv.Eventually(t, "one activator left", 0, func() bool { return len(registered(t, st)) == 1 })
	testenv.Eventually(t, "act-2 alone", 0, func() bool { return strings.Contains(metricsOf(t, srv2.URL), "kiln_activator_peers 1\n") })
	b.maxSeen.Store(0)
	for range 16 {
		wg.Go(func() { get(t, srv2.URL+"/", "default", "sub-00001") })
	}
	wg.Wait()
	if m := b.maxSeen.Load(); m > 4 {
		t.Fatalf("the instance saw %d requests at once, over containerConcurrency 4", m)
	}
}
