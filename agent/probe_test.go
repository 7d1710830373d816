package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// execFunc is an execer answering with a fixed code or error.
type execFunc func(id string, cmd []string) (int, error)

func (f execFunc) Exec(_ context.Context, id string, cmd []string) (int, error) { return f(id, cmd) }

func TestProberCheck(t *testing.T) {
	var mu sync.Mutex
	var seen *http.Request
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Clone(context.Background())
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	defer app.Close()
	host, portStr, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	closed := func() int {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return p
	}()
	exitCode := func(code int, err error) execer {
		return execFunc(func(id string, cmd []string) (int, error) {
			if id != "ctr" || len(cmd) != 2 || cmd[0] != "/bin/ready" {
				return 0, errors.New("wrong exec: " + id + " " + strings.Join(cmd, " "))
			}
			return code, err
		})
	}
	tests := []struct {
		name    string
		p       *cluster.Probe
		port    int // the app's port unless set
		ex      execer
		wantErr bool
	}{
		{name: "default tcp", p: nil},
		{name: "tcp refused", p: &cluster.Probe{TCPSocket: true}, port: closed, wantErr: true},
		{name: "http 200", p: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/ok"}}},
		{name: "http redirect passes", p: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/redirect"}}},
		{name: "http 500", p: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/bad"}}, wantErr: true},
		{name: "http on its own port", p: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/ok"}, Port: int32(port)}, port: closed},
		{name: "exec 0", p: &cluster.Probe{Exec: []string{"/bin/ready", "probe"}}, ex: exitCode(0, nil)},
		{name: "exec 1", p: &cluster.Probe{Exec: []string{"/bin/ready", "probe"}}, ex: exitCode(1, nil), wantErr: true},
		{name: "exec error", p: &cluster.Probe{Exec: []string{"/bin/ready", "probe"}}, ex: exitCode(0, errors.New("no task")), wantErr: true},
		{name: "exec without runtime", p: &cluster.Probe{Exec: []string{"/bin/ready", "probe"}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.port
			if p == 0 {
				p = port
			}
			// The spec's serving port is 8080; the agent moved it to p.
			pr := newProber(tc.p, host, p, 8080, "ctr", tc.ex)
			if err := pr.check(context.Background()); (err != nil) != tc.wantErr {
				t.Errorf("check = %v, want error %v", err, tc.wantErr)
			}
		})
	}

	t.Run("http headers, host and user agent", func(t *testing.T) {
		pr := newProber(&cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/ok", Headers: []cluster.HTTPHeader{
			{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "app.example"}}}}, host, port, 8080, "ctr", nil)
		if err := pr.check(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if seen.Header.Get("X-Probe") != "yes" || seen.Host != "app.example" || seen.UserAgent() != probeUserAgent {
			t.Errorf("probe sent host %q headers %v", seen.Host, seen.Header)
		}
	})
}

func TestProberHTTPSAndTimeout(t *testing.T) {
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * time.Second)
		}
	}))
	defer app.Close()
	host, portStr, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "https://"))
	port, _ := strconv.Atoi(portStr)
	// Self-signed certificates pass, as the kubelet's HTTPS probes do.
	pr := newProber(&cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/", Scheme: "HTTPS"}}, host, port, 8080, "", nil)
	if err := pr.check(context.Background()); err != nil {
		t.Errorf("https probe: %v", err)
	}
	pr = newProber(&cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/slow", Scheme: "HTTPS"}, TimeoutSeconds: 1}, host, port, 8080, "", nil)
	start := time.Now()
	if err := pr.check(context.Background()); err == nil {
		t.Error("a probe slower than timeoutSeconds passed")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("probe took %s, want about its 1s timeout", d)
	}
}

func TestProberTiming(t *testing.T) {
	tests := []struct {
		name             string
		p                *cluster.Probe
		start, running   time.Duration
		delay            time.Duration
		success, failure int
	}{
		{name: "defaults", p: nil, start: startProbeInterval, running: probeInterval, success: 1, failure: 3},
		{name: "period 0 exec probes less often", p: &cluster.Probe{Exec: []string{"x"}}, start: execStartInterval, running: probeInterval, success: 1, failure: 3},
		{name: "period set", p: &cluster.Probe{TCPSocket: true, PeriodSeconds: 2, InitialDelaySeconds: 3, SuccessThreshold: 2, FailureThreshold: 1},
			start: 2 * time.Second, running: 2 * time.Second, delay: 3 * time.Second, success: 2, failure: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := newProber(tc.p, "127.0.0.1", 1, 1, "", nil)
			s, f := pr.thresholds()
			if pr.startInterval() != tc.start || pr.period(probeInterval) != tc.running || pr.initialDelay() != tc.delay || s != tc.success || f != tc.failure {
				t.Errorf("start %s running %s delay %s thresholds %d/%d", pr.startInterval(), pr.period(probeInterval), pr.initialDelay(), s, f)
			}
		})
	}
}

func TestStreak(t *testing.T) {
	s := &streak{success: 2, failure: 3}
	steps := []struct {
		ok, want bool
	}{
		{true, false}, {true, true}, {false, false}, {false, false}, {true, false},
		{false, false}, {false, false}, {false, true}, {false, true}, {true, false}, {true, true},
	}
	for i, st := range steps {
		if got := s.record(st.ok); got != st.want {
			t.Fatalf("step %d (ok=%v): reached = %v, want %v", i, st.ok, got, st.want)
		}
	}
}

// An exec readiness probe gates traffic: the instance is not ready (its
// queue-proxy refuses probes) while the command fails, and is once it
// passes.
func TestExecReadinessGatesTraffic(t *testing.T) {
	e := newUnitEnv(t, true)
	e.node.setSick("gated", true)
	e.run(t, e.cfg)
	spec := e.spec(t, "hello-00001")
	spec.Readiness = &cluster.Probe{Exec: []string{"/ko-app/readiness", "probe"}}
	e.place(t, "gated", spec)
	e.waitRecord(t, "gated", "starting", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseStarting })
	testenv.Eventually(t, "exec probes", 0, func() bool { return e.node.execCount("gated") >= 3 })
	if inst, _ := e.record(t, "gated"); inst.Ready || inst.Phase != cluster.PhaseStarting {
		t.Fatalf("instance with a failing exec probe: %+v", inst)
	}
	e.node.setSick("gated", false)
	inst := e.waitRecord(t, "gated", "running", running)
	if code, body := get(t, inst.Endpoint); code != 200 || body != "fake gated" {
		t.Errorf("GET once ready: %d %q", code, body)
	}
}

// After startup a failing readiness probe takes the instance out of
// rotation after failureThreshold failures and a passing one brings it
// back; the container is not restarted.
func TestReadinessAfterStartup(t *testing.T) {
	e := newUnitEnv(t, true)
	e.run(t, e.cfg)
	spec := e.spec(t, "hello-00001")
	spec.Readiness = &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/healthz"}, PeriodSeconds: 1, FailureThreshold: 2}
	e.place(t, "flappy", spec)
	e.waitRecord(t, "flappy", "running", running)
	e.node.setSick("flappy", true)
	inst := e.waitRecord(t, "flappy", "out of rotation", func(i cluster.Instance) bool {
		return !i.Ready && i.Reason == "ProbeFailed"
	})
	if code, _ := get(t, inst.Endpoint, "K-Network-Probe", "queue"); code != http.StatusServiceUnavailable {
		t.Errorf("queue-proxy probe while unready: %d", code)
	}
	e.node.setSick("flappy", false)
	e.waitRecord(t, "flappy", "back in rotation", running)
	if r := e.node.restartCount("flappy"); r != 0 {
		t.Errorf("readiness failures restarted the container %d times", r)
	}
}

// A failing liveness probe restarts the serving container in place:
// RestartCount 1, the same container, serving again.
func TestLivenessFailureRestartsInPlace(t *testing.T) {
	e := newUnitEnv(t, true)
	e.run(t, e.cfg)
	spec := e.spec(t, "hello-00001")
	spec.Liveness = &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/healthz"}, PeriodSeconds: 1, FailureThreshold: 2}
	e.place(t, "stuck", spec)
	e.waitRecord(t, "stuck", "running", running)
	time.Sleep(1500 * time.Millisecond) // a passing liveness probe or so
	if inst, _ := e.record(t, "stuck"); inst.RestartCount != 0 {
		t.Fatalf("restarted while live: %+v", inst)
	}
	e.node.setSick("stuck", true)
	inst := e.waitRecord(t, "stuck", "restarted and running", func(i cluster.Instance) bool {
		return running(i) && i.RestartCount == 1
	})
	if n, r := e.node.startCount("stuck"), e.node.restartCount("stuck"); n != 1 || r != 1 {
		t.Errorf("container created %d times, restarted %d; want 1 and 1", n, r)
	}
	if code, body := get(t, inst.Endpoint); code != 200 || body != "fake stuck" {
		t.Errorf("GET after restart: %d %q", code, body)
	}
}

// An agent that adopts a restarted container keeps its RestartCount, as a
// kubelet keeps a pod's.
func TestRestartCountSurvivesAdoption(t *testing.T) {
	e := newUnitEnv(t, true)
	stop1 := e.run(t, e.cfg)
	e.place(t, "counted", e.spec(t, "hello-00001"))
	e.waitRecord(t, "counted", "running", running)
	e.node.crash("counted")
	e.waitRecord(t, "counted", "restarted", func(i cluster.Instance) bool { return running(i) && i.RestartCount == 1 })
	stop1()
	e.run(t, e.cfg)
	e.waitRecord(t, "counted", "adopted with its count", func(i cluster.Instance) bool { return running(i) && i.RestartCount == 1 })
	if n, r := e.node.startCount("counted"), e.node.restartCount("counted"); n != 1 || r != 1 {
		t.Errorf("container created %d times, restarted %d; want 1 and 1", n, r)
	}
}

func TestProberGRPC(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("ready", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		service string
		wantErr bool
	}{{"", false}, {"ready", false}, {"down", true}, {"unknown", true}} {
		pr := newProber(&cluster.Probe{GRPC: &cluster.GRPCProbe{Service: tc.service}}, "127.0.0.1", port, 8080, "", nil)
		if err := pr.check(context.Background()); (err != nil) != tc.wantErr {
			t.Errorf("service %q: check = %v, want error %v", tc.service, err, tc.wantErr)
		}
	}
}
