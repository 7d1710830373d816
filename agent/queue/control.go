package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-serving/kiln/internal/meter"
)

// The control API a queue-proxy running as its own process (kilnd queue)
// serves to its agent: HTTP over a unix socket only the agent's user may
// open. Every request is the agent's heartbeat (see ControlConfig.Fence).
const (
	// PathState (GET) answers the State.
	PathState = "/state"
	// PathReady (PUT, body {"ready":bool}) flips the readiness the
	// network probe answers.
	PathReady = "/ready"
	// PathReport (POST) closes the reporting period and answers the
	// Report.
	PathReport = "/report"
	// PathDrain (POST) drains the proxy (Proxy.Drain, bounded by
	// ControlConfig.DrainTimeout), answers once drained, then the
	// process exits.
	PathDrain = "/drain"
	// PathStop (POST) closes the proxy at once, answers, then the
	// process exits.
	PathStop = "/stop"
)

// State is what PathState answers.
type State struct {
	PID      int    `json:"pid"`
	Instance string `json:"instance"`
	Target   string `json:"target"`
	// Port is the port the proxy serves on.
	Port     int   `json:"port"`
	Ready    bool  `json:"ready"`
	Draining bool  `json:"draining"`
	Stats    Stats `json:"stats"`
	// Created is when the proxy was built (the instance's uptime base).
	Created time.Time `json:"created"`
}

// Report is what PathReport answers: one reporting period.
type Report struct {
	meter.Report
	// Created is when the proxy was built.
	Created time.Time `json:"created"`
}

// ControlConfig describes a queue-proxy run under an agent's control.
type ControlConfig struct {
	// Instance and Target name what the proxy fronts, for State.
	Instance, Target string
	// OnFence, when set, runs once the proxy has fenced itself and
	// finished its requests in flight (the agent's StopInstance: the
	// instance's containers stop too). Optional.
	OnFence func(context.Context) error
	// Fence is how long the proxy serves without any control request:
	// past it, its agent is taken to be gone for longer than its node
	// lease, the cluster to have re-placed its instances, and the proxy
	// stops accepting, finishes its requests in flight and returns.
	// Required.
	Fence time.Duration
	// DrainTimeout bounds a drain's wait for requests in flight (the
	// revision's timeout). Required.
	DrainTimeout time.Duration
}

// ErrBadControlConfig marks a ControlConfig that cannot run.
var ErrBadControlConfig = errors.New("queue: bad control config")

// RunControlled serves p on ln and the control API on ctl until the agent
// asks it to drain or stop, the fence passes, or ctx ends (then it
// drains, as a queue-proxy sidecar does on SIGTERM). It returns nil once
// p has stopped and the control API answered its last request; ctl is
// closed then.
func RunControlled(ctx context.Context, p *Proxy, ln, ctl net.Listener, cfg ControlConfig, log *slog.Logger) error {
	if cfg.Fence <= 0 {
		return fmt.Errorf("%w: fence timeout must be positive", ErrBadControlConfig)
	}
	if cfg.DrainTimeout <= 0 {
		return fmt.Errorf("%w: drain timeout must be positive", ErrBadControlConfig)
	}
	port := 0
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	r := &controlled{p: p, cfg: cfg, port: port, log: log, done: make(chan struct{})}
	r.touch()

	serveErr := make(chan error, 1)
	go func() { serveErr <- p.Serve(ln) }()
	csrv := &http.Server{Handler: r.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = csrv.Serve(ctl) }()
	defer func() {
		// Let the request that ended the proxy have its answer.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = csrv.Shutdown(sctx)
		cancel()
	}()

	tick := time.NewTicker(min(cfg.Fence/4, time.Second))
	defer tick.Stop()
	fenced := false
	for {
		select {
		case <-ctx.Done():
			go r.end("signal", func(ctx context.Context) error { return p.Drain(ctx) })
			ctx = context.Background()
		case <-tick.C:
			if idle := time.Since(time.Unix(0, r.last.Load())); idle > cfg.Fence && !fenced {
				fenced = true
				go r.end("fence", func(ctx context.Context) error {
					log.Error("no word from the agent: assuming its node lease expired and its instances were re-placed; stopping (fencing)",
						"instance", cfg.Instance, "silent_for", idle.Round(time.Millisecond).String(), "fence_timeout", cfg.Fence.String())
					err := p.Shutdown(ctx)
					if cfg.OnFence != nil {
						if ferr := cfg.OnFence(ctx); ferr != nil {
							log.Error("stop the fenced instance", "instance", cfg.Instance, "error", ferr)
						}
					}
					return err
				})
			}
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("queue-proxy stopped serving: %w", err)
			}
			serveErr = nil
		case <-r.done:
			if serveErr != nil {
				<-serveErr
			}
			return nil
		}
	}
}

type controlled struct {
	p    *Proxy
	cfg  ControlConfig
	port int
	log  *slog.Logger
	// last is when the last control request came, in Unix nanoseconds.
	last atomic.Int64
	once sync.Once
	// done is closed when the proxy has ended (end).
	done chan struct{}
	err  error
}

func (r *controlled) touch() { r.last.Store(time.Now().UnixNano()) }

// end stops the proxy once, with stop bounded by the drain timeout; later
// calls wait for the first.
func (r *controlled) end(why string, stop func(context.Context) error) error {
	r.once.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
		r.err = stop(ctx)
		cancel()
		_ = r.p.Close()
		r.log.Info("queue-proxy stopped", "instance", r.cfg.Instance, "why", why, "stop_ms", time.Since(start).Milliseconds(), "error", r.err)
		close(r.done)
	})
	<-r.done
	return r.err
}

func (r *controlled) state() State {
	return State{PID: os.Getpid(), Instance: r.cfg.Instance, Target: r.cfg.Target, Port: r.port,
		Ready: r.p.Ready(), Draining: r.p.Draining(), Stats: r.p.Stats(), Created: r.p.Created()}
}

func (r *controlled) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathState, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, r.state())
	})
	mux.HandleFunc("PUT "+PathReady, func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Ready *bool `json:"ready"`
		}
		if err := json.NewDecoder(io.LimitReader(req.Body, 1<<10)).Decode(&body); err != nil || body.Ready == nil {
			http.Error(w, `body must be {"ready": true|false}`, http.StatusBadRequest)
			return
		}
		r.p.SetReady(*body.Ready)
		writeJSON(w, r.state())
	})
	mux.HandleFunc("POST "+PathReport, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, Report{Report: r.p.Report(time.Now()), Created: r.p.Created()})
	})
	mux.HandleFunc("POST "+PathDrain, func(w http.ResponseWriter, _ *http.Request) {
		if err := r.end("drain", r.p.Drain); err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+PathStop, func(w http.ResponseWriter, _ *http.Request) {
		_ = r.end("stop", func(context.Context) error { return r.p.Close() })
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.touch()
		mux.ServeHTTP(w, req)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// maxSunPath is the room a unix socket path has (sun_path, with its NUL).
const maxSunPath = 107

// ListenControl listens on the unix socket at path (mode 0600, its
// directory created 0700), replacing a stale socket file. A path longer
// than a socket address holds is bound through its directory's
// descriptor.
func ListenControl(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	var ln net.Listener
	err := viaShortPath(path, func(addr string) error {
		var err error
		ln, err = net.Listen("unix", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// Close must not unlink through a descriptor path that means
	// nothing any more; the caller removes path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// viaShortPath calls fn with path, or, when path is too long for a socket
// address, with /proc/self/fd/N/BASE where N is path's open directory.
func viaShortPath(path string, fn func(addr string) error) error {
	if len(path) <= maxSunPath {
		return fn(path)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	short := "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + filepath.Base(path)
	if len(short) > maxSunPath {
		return fmt.Errorf("socket name %q too long", filepath.Base(path))
	}
	return fn(short)
}

// ControlClient calls a queue-proxy's control API.
type ControlClient struct {
	path string
	hc   *http.Client
}

// NewControlClient returns a client of the control socket at path; it
// connects on each call.
func NewControlClient(path string) *ControlClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var c net.Conn
			err := viaShortPath(path, func(addr string) error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, "unix", addr)
				return err
			})
			return c, err
		},
		MaxIdleConns:    1,
		IdleConnTimeout: 30 * time.Second,
	}
	return &ControlClient{path: path, hc: &http.Client{Transport: tr}}
}

// Path is the control socket's path.
func (c *ControlClient) Path() string { return c.path }

// CloseIdle closes the client's idle connection.
func (c *ControlClient) CloseIdle() { c.hc.CloseIdleConnections() }

// State asks for the proxy's State.
func (c *ControlClient) State(ctx context.Context) (State, error) {
	var st State
	return st, c.do(ctx, http.MethodGet, PathState, nil, &st)
}

// SetReady sets the readiness the proxy's probe answers.
func (c *ControlClient) SetReady(ctx context.Context, ready bool) error {
	return c.do(ctx, http.MethodPut, PathReady, map[string]bool{"ready": ready}, nil)
}

// Report closes the proxy's reporting period and returns it.
func (c *ControlClient) Report(ctx context.Context) (Report, error) {
	var r Report
	return r, c.do(ctx, http.MethodPost, PathReport, nil, &r)
}

// Drain drains the proxy and returns once it has stopped serving.
func (c *ControlClient) Drain(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, PathDrain, nil, nil)
}

// Stop closes the proxy at once.
func (c *ControlClient) Stop(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, PathStop, nil, nil)
}

func (c *ControlClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://queue"+path, body)
	if err != nil {
		return err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("queue control %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		return fmt.Errorf("queue control %s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}
