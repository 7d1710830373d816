package commands

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// A stopping activator hands off: its activators/ record goes first while
// it still serves new requests, then it stops accepting, and a request in
// flight then still completes before it returns.
func TestActivatorGracefulStop(t *testing.T) {
	st := testenv.StartEtcd(t)
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(be.Close)
	rev := v1.Revision{}
	rev.Metadata.Namespace, rev.Metadata.Name = "default", "hello-00001"
	testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "revisions", "default", "hello-00001"), rev)
	testenv.PutJSON(t, st, store.InstanceKey("n1", "hello-00001-a"), cluster.Instance{Instance: "hello-00001-a", Node: "n1",
		Namespace: "default", Revision: "hello-00001", Phase: cluster.PhaseRunning, Ready: true, Endpoint: strings.TrimPrefix(be.URL, "http://")})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	key := store.ActivatorKey(identity())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyC := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runActivator(ctx, st, addr, "", activatorStop{drainDelay: 1500 * time.Millisecond, timeout: 10 * time.Second},
			pki.Files{}, testenv.Logger(), func() { close(readyC) })
	}()
	<-readyC
	registered := func() bool {
		_, err := st.Get(context.Background(), key)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	testenv.Eventually(t, "activator registered", 0, registered)
	get := func(path string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set(v1.NamespaceHeaderName, "default")
		req.Header.Set(v1.RevisionHeaderName, "hello-00001")
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get("/before"); code != 200 || err != nil {
		t.Fatalf("GET before the stop: %d %q %v", code, body, err)
	}
	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		code, body, err := get("/slow")
		slow <- result{code, body, err}
	}()

	t0 := time.Now()
	cancel()
	testenv.Eventually(t, "activator record removed", 0, func() bool { return !registered() })
	t.Logf("deregistered %s after the stop", time.Since(t0))
	if code, body, err := get("/handoff"); code != 200 || body != "ok /handoff" || err != nil {
		t.Errorf("GET after deregistering, during the hand-off: %d %q %v", code, body, err)
	}
	testenv.Eventually(t, "listener refusing", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	t.Logf("stopped accepting %s after the stop", time.Since(t0))
	select {
	case err := <-done:
		t.Fatalf("activator returned with a request in flight: %v", err)
	default:
	}
	close(release)
	if r := <-slow; r.code != 200 || r.body != "ok /slow" || r.err != nil {
		t.Errorf("request in flight across the stop: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("runActivator: %v", err)
	}
}

// --drain-delay and --shutdown-timeout are refused naming the flag.
func TestActivatorStopFlags(t *testing.T) {
	for _, args := range [][]string{{"--drain-delay", "-1s"}, {"--shutdown-timeout", "0s"}} {
		err := NewApp().Run(append([]string{"kilnd", "activator"}, args...))
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: err = %v, want it refused naming the flag", args, err)
		}
	}
}
