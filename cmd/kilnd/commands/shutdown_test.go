package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/apiserver"
)

// A stopping role's HTTP server lets a request in flight finish, and the
// stop is no error of the role.
func TestServeOnLetsRequestsInFlightFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var g errgroup.Group
	if _, err := serveOn(ctx, &g, lis, "http", h, testenv.Quiet()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + lis.Addr().String())
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-started
	cancel()
	testenv.Eventually(t, "listener closed", 0, func() bool {
		c, err := net.DialTimeout("tcp", lis.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if r := <-res; r.body != "done" || r.err != nil {
		t.Errorf("request in flight across the stop: %q %v", r.body, r.err)
	}
	if err := g.Wait(); err != nil {
		t.Errorf("server stop: %v", err)
	}
}

// A stopping apiserver ends its watches at once, with a last BOOKMARK the
// client resumes from on another apiserver, instead of holding its stop
// for the whole shutdown grace and then failing.
func TestAPIServerStopEndsWatches(t *testing.T) {
	st := testenv.StartEtcd(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyC := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runAPIServer(ctx, st, addr, apiserver.Options{Insecure: true}, nil, testenv.Quiet(), func() { close(readyC) })
	}()
	<-readyC
	resp, err := http.Get("http://" + addr + "/apis/serving.knative.dev/v1/namespaces/default/services?watch=true&allowWatchBookmarks=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("watch: %s", resp.Status)
	}
	t0 := time.Now()
	cancel()
	var last struct{ Type string }
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("watch event %q: %v", sc.Text(), err)
		}
	}
	t.Logf("watch ended %s after the stop", time.Since(t0))
	if last.Type != "BOOKMARK" {
		t.Errorf("last watch event %q, want a BOOKMARK to resume from", last.Type)
	}
	if err := <-done; err != nil {
		t.Errorf("runAPIServer: %v", err)
	}
}
