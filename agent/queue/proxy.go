package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiln-serving/kiln/internal/deadline"
	"github.com/kiln-serving/kiln/internal/forwarded"
	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/timeout"
)

// ProbeHeader is the request header that makes the queue-proxy answer
// itself instead of forwarding: K-Network-Probe: queue (as in Knative).
const (
	ProbeHeader = "K-Network-Probe"
	ProbeValue  = "queue"
)

// Config describes one queue-proxy. Target is required; the rest are
// optional and immutable once the proxy is built.
type Config struct {
	// Target is the container's host:port.
	Target string
	// ContainerConcurrency is the hard in-flight limit; 0 means unlimited.
	ContainerConcurrency int64
	// QueueDepth is how many requests may wait for a slot beyond
	// ContainerConcurrency; default max(10*ContainerConcurrency, 100).
	QueueDepth int
	// Timeout bounds each request, queueing included; ResponseStart the
	// time to its response's first byte; Idle the time between the
	// response's writes. 0 means none; see internal/timeout.
	Timeout, ResponseStart, Idle time.Duration
	// H2C makes the proxy speak HTTP/2 cleartext to the target (a
	// serving port named h2c); otherwise it speaks HTTP/1.1.
	H2C bool
	// DrainDelay is how long Drain keeps serving after the probe turned
	// not ready, so edges and activators drop the endpoint before its
	// listener closes (Knative's drain sleep). Optional, default none.
	DrainDelay time.Duration
	// Now is the clock the meter reads when requests come and go.
	// Optional, default time.Now; tests give a fake one so the measured
	// concurrency does not depend on the scheduler.
	Now func() time.Time
	// TLS makes the proxy serve mutual TLS (internal/mtls) and admit only
	// callers passing Check. Optional: nil serves plain HTTP.
	TLS *tls.Config
	// Check admits a verified caller; required with TLS.
	Check mtls.Check
}

// Stats are the proxy's counters, for the autoscaler's metrics.
type Stats struct {
	// InFlight counts requests being forwarded to the container now.
	InFlight int64
	// Queued counts requests waiting for a breaker slot now.
	Queued int64
	// Total counts every proxied request since start (probes excluded).
	Total int64
}

// Proxy is one instance's queue-proxy.
type Proxy struct {
	log        *slog.Logger
	limits     timeout.Limits
	drainDelay time.Duration
	meter      *meter.Meter
	now        func() time.Time
	created    time.Time
	breaker    *Breaker // nil when unlimited
	rp         *httputil.ReverseProxy
	srv        *http.Server
	tls        *tls.Config

	ready    atomic.Bool
	draining atomic.Bool
	inFlight atomic.Int64
	queued   atomic.Int64
	total    atomic.Int64
}

// New builds a proxy for cfg. It is not ready until SetReady(true).
func New(cfg Config, log *slog.Logger) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("queue: empty target")
	}
	target := &url.URL{Scheme: "http", Host: cfg.Target}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	p := &Proxy{log: log, limits: timeout.Limits{Total: cfg.Timeout, ResponseStart: cfg.ResponseStart, Idle: cfg.Idle}, drainDelay: cfg.DrainDelay, now: now, created: now()}
	p.meter = meter.NewMeter(p.created)
	if cfg.ContainerConcurrency > 0 {
		depth := cfg.QueueDepth
		if depth <= 0 {
			depth = max(10*int(cfg.ContainerConcurrency), 100)
		}
		p.breaker = NewBreaker(int(cfg.ContainerConcurrency), depth)
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if cfg.H2C {
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			forwarded.Keep(r)
		},
		Transport:      transport,
		FlushInterval:  -1, // stream responses (SSE, chunked) without buffering
		ModifyResponse: grpcStatusToTrailers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// Timed out (the timeout handler answered) or the
				// client went away: nobody reads an answer.
				return
			}
			p.log.Warn("proxy to container failed", "error", err)
			http.Error(w, "kiln queue-proxy: container unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	var h http.Handler = p
	if cfg.TLS != nil {
		if cfg.Check == nil {
			return nil, errors.New("queue: TLS without a caller check")
		}
		h = mtls.Handler(p, cfg.Check)
		p.tls = cfg.TLS
	}
	// No ReadTimeout: requests may stream for the revision's
	// timeoutSeconds (up to 600s), which cfg.Timeout bounds per request;
	// Drop closes a connection whose body the proxy gave up on.
	p.srv = &http.Server{Handler: deadline.Drop(h), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	if cfg.TLS == nil {
		// Edges may speak h2c to an h2c revision's instances.
		p.srv.Protocols = new(http.Protocols)
		p.srv.Protocols.SetHTTP1(true)
		p.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return p, nil
}

// SetReady flips the readiness the probe answers.
func (p *Proxy) SetReady(ready bool) { p.ready.Store(ready) }

// Ready reports the current readiness.
func (p *Proxy) Ready() bool { return p.ready.Load() && !p.draining.Load() }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	return Stats{InFlight: p.inFlight.Load(), Queued: p.queued.Load(), Total: p.total.Load()}
}

// Report closes the current reporting period at now and returns what the
// proxy saw in it; the next period starts at now.
func (p *Proxy) Report(now time.Time) meter.Report { return p.meter.Report(now) }

// Created is when the proxy was built (its instance's uptime base).
func (p *Proxy) Created() time.Time { return p.created }

// Serve accepts connections on ln until Drain or Close; it returns
// http.ErrServerClosed after either.
func (p *Proxy) Serve(ln net.Listener) error {
	if p.tls != nil {
		ln = tls.NewListener(ln, p.tls)
	}
	return p.srv.Serve(ln)
}

// Drain turns the probe not ready, keeps serving for the configured
// DrainDelay (so whoever routes here sees the change first), then stops
// accepting new connections and waits for in-flight requests until ctx
// ends; then it closes whatever is left.
func (p *Proxy) Drain(ctx context.Context) error {
	p.ready.Store(false)
	if p.drainDelay > 0 {
		t := time.NewTimer(p.drainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	p.draining.Store(true)
	err := p.srv.Shutdown(ctx)
	if err != nil {
		_ = p.srv.Close()
		return fmt.Errorf("drain queue-proxy: %w", err)
	}
	return nil
}

// Shutdown turns the probe not ready and stops accepting at once (the
// listener closes, so callers get connection refused and try elsewhere),
// then waits for in-flight requests until ctx ends; then it closes
// whatever is left.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.ready.Store(false)
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
		return fmt.Errorf("shut down queue-proxy: %w", err)
	}
	return nil
}

// Draining reports whether the proxy is stopping (Drain past its delay,
// or Close).
func (p *Proxy) Draining() bool { return p.draining.Load() }

// Close stops the proxy at once, cutting in-flight requests.
func (p *Proxy) Close() error {
	p.draining.Store(true)
	return p.srv.Close()
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(ProbeHeader) == ProbeValue {
		if p.Ready() {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(ProbeValue))
			return
		}
		http.Error(w, "kiln queue-proxy: not ready", http.StatusServiceUnavailable)
		return
	}
	if p.draining.Load() {
		http.Error(w, "kiln queue-proxy: instance is shutting down", http.StatusServiceUnavailable)
		return
	}
	p.total.Add(1)
	proxied := r.Header.Get(meter.ProxyHeaderName) != ""
	p.meter.In(p.now(), proxied)
	defer func() { p.meter.Out(p.now(), proxied) }()
	timeout.Serve(w, r, http.HandlerFunc(p.forward), p.limits)
}

// forward queues r for a breaker slot and proxies it to the container.
// The timeout handler around it answers a request that runs out of time.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p.breaker != nil {
		p.queued.Add(1)
		err := p.breaker.Acquire(ctx)
		p.queued.Add(-1)
		switch {
		case errors.Is(err, ErrQueueFull):
			http.Error(w, "kiln queue-proxy: overloaded: containerConcurrency reached and queue full", http.StatusServiceUnavailable)
			return
		case err != nil:
			// Timed out (answered by the timeout handler) or the
			// client went away while queued.
			return
		}
		defer p.breaker.Release()
	}
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.rp.ServeHTTP(w, r)
}

// grpcStatusToTrailers turns a gRPC Trailers-Only response (the status in
// the headers, no body: how a gRPC server answers an error at once) into
// headers and trailers when the caller speaks HTTP/1.1, where a status in
// the headers would be read as headers of a stream that never ends
// properly. Over HTTP/2 the response passes as it is.
// res.Request is the outbound clone of the inbound request: its Proto is
// the caller's.
func grpcStatusToTrailers(res *http.Response) error {
	if res.Request == nil || res.Request.ProtoMajor != 1 || res.Header.Get("Grpc-Status") == "" ||
		!strings.HasPrefix(res.Header.Get("Content-Type"), "application/grpc") {
		return nil
	}
	if res.Trailer == nil {
		res.Trailer = http.Header{}
	}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v := res.Header.Values(k); len(v) > 0 {
			res.Trailer[k] = v
			res.Header.Del(k)
		}
	}
	return nil
}
