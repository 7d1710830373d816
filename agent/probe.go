package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kiln-serving/kiln/internal/cluster"
)

// Kubernetes's probe defaults, for fields left 0.
const (
	defaultProbeTimeout     = time.Second
	defaultProbePeriod      = 10 * time.Second
	defaultSuccessThreshold = 1
	defaultFailureThreshold = 3
	// execStartInterval paces the aggressive startup probing of exec and
	// gRPC probes, which cost a process or a connection each.
	execStartInterval = 100 * time.Millisecond
	probeUserAgent    = "kiln-agent-probe"
)

// execer runs a command in a running container and returns its exit code.
type execer interface {
	Exec(ctx context.Context, id string, cmd []string) (int, error)
}

// prober runs one probe against one incarnation of a serving container.
type prober struct {
	p cluster.Probe
	// host and port are where the container listens (port resolved from
	// p.Port: the serving port when 0).
	host string
	port int
	// ctr is the container exec probes run in.
	ctr  string
	exec execer
}

// newProber probes p (nil: a TCP connect to the serving port) of the
// container ctr, which listens at host on port appPort for the serving
// port the spec names specPort (they differ on the host network, where
// the agent picks the port).
func newProber(p *cluster.Probe, host string, appPort int, specPort int32, ctr string, ex execer) prober {
	pr := prober{host: host, port: appPort, ctr: ctr, exec: ex}
	if p == nil {
		pr.p = cluster.Probe{TCPSocket: true}
		return pr
	}
	pr.p = *p
	if p.Port != 0 && p.Port != specPort {
		pr.port = int(p.Port)
	}
	return pr
}

// readinessProbe is the serving container's readiness probe, from
// Readiness or, in records written before it existed, ReadinessPath.
func readinessProbe(s cluster.InstanceSpec) *cluster.Probe {
	if s.Readiness != nil {
		return s.Readiness
	}
	if s.ReadinessPath != "" {
		return &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: s.ReadinessPath}}
	}
	return nil
}

func (pr prober) timeout() time.Duration {
	if pr.p.TimeoutSeconds > 0 {
		return time.Duration(pr.p.TimeoutSeconds) * time.Second
	}
	return defaultProbeTimeout
}

// period is the interval between probes once the container runs;
// fallback applies when the probe sets none.
func (pr prober) period(fallback time.Duration) time.Duration {
	if pr.p.PeriodSeconds > 0 {
		return time.Duration(pr.p.PeriodSeconds) * time.Second
	}
	return fallback
}

// startInterval is how often readiness is probed until the container is
// first ready: every period when one is set, else aggressively (Knative's
// periodSeconds 0).
func (pr prober) startInterval() time.Duration {
	switch {
	case pr.p.PeriodSeconds > 0:
		return time.Duration(pr.p.PeriodSeconds) * time.Second
	case len(pr.p.Exec) > 0 || pr.p.GRPC != nil:
		return execStartInterval
	default:
		return startProbeInterval
	}
}

func (pr prober) initialDelay() time.Duration {
	return time.Duration(max(pr.p.InitialDelaySeconds, 0)) * time.Second
}

func (pr prober) thresholds() (success, failure int) {
	success, failure = int(pr.p.SuccessThreshold), int(pr.p.FailureThreshold)
	if success <= 0 {
		success = defaultSuccessThreshold
	}
	if failure <= 0 {
		failure = defaultFailureThreshold
	}
	return success, failure
}

// check runs the probe once, bounded by its timeout; nil means it passed.
func (pr prober) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pr.timeout())
	defer cancel()
	addr := net.JoinHostPort(pr.host, strconv.Itoa(pr.port))
	switch {
	case pr.p.HTTPGet != nil:
		return pr.checkHTTP(ctx, addr)
	case len(pr.p.Exec) > 0:
		if pr.exec == nil {
			return errors.New("exec probe: no runtime to exec in")
		}
		code, err := pr.exec.Exec(ctx, pr.ctr, pr.p.Exec)
		if err != nil {
			return fmt.Errorf("exec probe %q: %w", pr.p.Exec, err)
		}
		if code != 0 {
			return fmt.Errorf("exec probe %q exited with code %d", pr.p.Exec, code)
		}
		return nil
	case pr.p.GRPC != nil:
		return checkGRPC(ctx, addr, pr.p.GRPC.Service)
	default:
		d := net.Dialer{}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// httpProbeClient never reuses connections (a probe must see the app as
// a new client would) and, as the kubelet, does not verify HTTPS
// certificates.
var httpProbeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes check liveness, not identity
	},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// checkHTTP passes on 2xx and 3xx, as the kubelet's HTTP probe.
func (pr prober) checkHTTP(ctx context.Context, addr string) error {
	g := pr.p.HTTPGet
	scheme := "http"
	if strings.EqualFold(g.Scheme, "HTTPS") {
		scheme = "https"
	}
	path := g.Path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	req.Header.Set("User-Agent", probeUserAgent)
	for _, h := range g.Headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := httpProbeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("http probe %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// checkGRPC passes when the gRPC health service answers SERVING.
func checkGRPC(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(probeUserAgent))
	if err != nil {
		return fmt.Errorf("grpc probe: %w", err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc probe: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc probe: status %s", s)
	}
	return nil
}

// streak counts consecutive probe results against a probe's thresholds.
type streak struct {
	success, failure int // thresholds
	passes, fails    int
}

func newStreak(pr prober) *streak {
	s, f := pr.thresholds()
	return &streak{success: s, failure: f}
}

// record adds one result and reports whether its run reached its
// threshold: successThreshold passes, or failureThreshold failures, in a
// row.
func (s *streak) record(ok bool) bool {
	if ok {
		s.fails = 0
		s.passes++
		return s.passes >= s.success
	}
	s.passes = 0
	s.fails++
	return s.fails >= s.failure
}
