package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a gateway.
type Config struct {
	// XDSAddress is host:port of the kilnd xds role. Required.
	XDSAddress string
	// NodeID identifies this edge to the xds server (logs, NACK reports).
	// Optional, default the host name.
	NodeID string
	// ListenHost is the address the HTTP listener binds. Optional, default
	// 0.0.0.0; the port comes from LDS.
	ListenHost string
	// PortOverride, when non-zero, replaces the listener port from LDS (to
	// run a gateway next to something already holding that port).
	PortOverride int
}

// Gateway is an xDS-driven HTTP edge. Create it with New and start it with
// Run; it serves once Ready is closed.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	table atomic.Pointer[table]
	proxy *httputil.ReverseProxy

	ready     chan struct{}
	readyOnce sync.Once

	mu   sync.Mutex // guards srv and addr
	srv  *http.Server
	addr net.Addr
	port int
}

// New returns a gateway for cfg. It does no I/O.
func New(cfg Config, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = "0.0.0.0"
	}
	g := &Gateway{cfg: cfg, log: log.With("component", "gateway"), ready: make(chan struct{})}
	g.proxy = g.newProxy()
	return g
}

// Ready is closed once the first complete configuration (LDS, RDS, CDS and
// EDS) has been applied and the HTTP listener is bound.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Addr is the bound HTTP address, or nil before Ready.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addr
}

// Run connects to the xds server, keeps the routing table current and
// serves HTTP until ctx ends. It returns nil on cancellation, or an error
// when the listener cannot be bound.
func (g *Gateway) Run(ctx context.Context) error {
	if g.cfg.XDSAddress == "" {
		return errors.New("gateway: no xds address")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatal := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.runXDS(ctx); err != nil {
			fatal <- err
			cancel()
		}
	})
	<-ctx.Done()
	wg.Wait()

	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}
	select {
	case err := <-fatal:
		return err
	default:
		return nil
	}
}

// apply publishes t and makes sure the listener it names is bound.
func (g *Gateway) apply(t *table) error {
	port := int(t.port)
	if g.cfg.PortOverride != 0 {
		port = g.cfg.PortOverride
	}
	g.table.Store(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil && g.port == port {
		return nil
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(g.cfg.ListenHost, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("bind http listener: %w", err)
	}
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	// Envoy's codec AUTO also speaks HTTP/2 with prior knowledge.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("http serve", "error", err)
		}
	}()
	if old := g.srv; old != nil {
		// The listener moved: drain the old one in the background.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = old.Shutdown(ctx)
		}()
	}
	g.srv, g.addr, g.port = srv, lis.Addr(), port
	g.log.Info("serving http", "address", lis.Addr().String())
	return nil
}

func (g *Gateway) markReady() {
	g.readyOnce.Do(func() { close(g.ready) })
}

// target is what ServeHTTP decided, handed to the proxy's Rewrite.
type target struct {
	endpoint       string
	connectTimeout time.Duration
	ops            [4]*headerOps // most specific first: cluster, route, vhost, route config
}

type targetKey struct{}

// ServeHTTP routes one request as Envoy would.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := g.table.Load()
	if t == nil {
		localReply(w, http.StatusServiceUnavailable, "no healthy upstream")
		return
	}
	vh := t.vhostFor(r.Host)
	if vh == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	rt := vh.routeFor(r.URL.Path)
	if rt == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if rt.direct != nil {
		localReply(w, rt.direct.status, rt.direct.body)
		return
	}
	wc := rt.pick()
	if wc == nil || wc.upstream == nil {
		// Envoy's "cluster not found": 503 with an empty body.
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	ep := wc.upstream.endpoint()
	if ep == "" {
		localReply(w, http.StatusServiceUnavailable, "no healthy upstream")
		return
	}
	tg := &target{endpoint: ep, connectTimeout: wc.upstream.connectTimeout,
		ops: [4]*headerOps{&wc.headers, &rt.headers, &vh.headers, &t.headers}}
	ctx := context.WithValue(r.Context(), targetKey{}, tg)
	if rt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.timeout)
		defer cancel()
	}
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func localReply(w http.ResponseWriter, status int, body string) {
	if body != "" {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (g *Gateway) newProxy() *httputil.ReverseProxy {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			timeout := 5 * time.Second
			if tg, ok := ctx.Value(targetKey{}).(*target); ok && tg.connectTimeout > 0 {
				timeout = tg.connectTimeout
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dialer.DialContext(ctx, network, addr)
		},
		// Queue-proxies are few and busy: keep plenty of warm connections.
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			tg := pr.In.Context().Value(targetKey{}).(*target)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = tg.endpoint
			// The Host header is kept (Envoy does not rewrite it): the
			// queue-proxy and activator route on it.
			pr.Out.Host = pr.In.Host
			// use_remote_address: append the client to X-Forwarded-For and
			// say which scheme it used. Rewrite has removed both from Out.
			if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				xff := ip
				if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
					xff = strings.Join(prior, ", ") + ", " + ip
				}
				pr.Out.Header.Set("X-Forwarded-For", xff)
			}
			proto := "http"
			if pr.In.TLS != nil {
				proto = "https"
			}
			pr.Out.Header.Set("X-Forwarded-Proto", proto)
			// Less specific levels are applied last and win, Envoy's
			// default (most_specific_header_mutations_wins false).
			for _, ops := range tg.ops {
				ops.apply(pr.Out.Header)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
				localReply(w, http.StatusGatewayTimeout, "upstream request timeout")
				return
			}
			if r.Context().Err() != nil {
				return // the client went away
			}
			g.log.Debug("upstream error", "host", r.Host, "error", err)
			localReply(w, http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
		},
	}
}
