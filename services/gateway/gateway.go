package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/kiln-serving/kiln/internal/deadline"
)

// Config configures a gateway.
type Config struct {
	// XDSAddresses are host:port of the kilnd xds replicas, tried in turn
	// when a stream fails. At least one is required.
	XDSAddresses []string
	// NodeID identifies this edge to the xds server (logs, NACK reports).
	// Optional, default the host name.
	NodeID string
	// ListenHost is the address the HTTP listener binds. Optional, default
	// 0.0.0.0; the port comes from LDS.
	ListenHost string
	// PortOverride, when non-zero, replaces the port LDS names for the
	// public HTTP listener (kiln-http), to run a gateway next to something
	// already holding that port. Other listeners (kiln-https,
	// kiln-internal) bind the ports LDS names.
	PortOverride int
	// AdminListen, when set, is host:port of an Envoy-style admin listener
	// serving /ready and /config_dump (see admin.go). Optional; off when
	// empty. Bind it to loopback: it shows the whole edge configuration.
	AdminListen string
	// XDSCreds is the transport credential to the xds server (mutual TLS,
	// internal/mtls). Optional: nil means plain gRPC.
	XDSCreds grpc.DialOption
	// UpstreamTLS is the client config for clusters whose xDS definition
	// carries an UpstreamTlsContext (queue-proxies and activators under
	// mutual TLS): the gateway presents its own certificate there, as an
	// Envoy edge presents the bootstrap's static secret. Optional: nil
	// answers 503 for such clusters.
	UpstreamTLS *tls.Config
}

// Gateway is an xDS-driven HTTP edge. Create it with New and start it with
// Run; it serves once Ready is closed.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[edgeState]
	// applied is the raw xDS configuration behind state, for /config_dump.
	applied   atomic.Pointer[applied]
	adminAddr atomic.Pointer[net.Addr]
	proxy     *httputil.ReverseProxy
	// outliers are endpoints left out after refusing a connection.
	outliers *outliers

	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex // guards servers
	servers map[string]*boundServer
	// serving counts the goroutines serving or draining a listener, which
	// apply starts as listeners come and go; Run waits for them.
	serving sync.WaitGroup
}

// boundServer is one listener's HTTP server.
type boundServer struct {
	srv  *http.Server
	addr net.Addr
	port int
	tls  bool
}

// New returns a gateway for cfg. It does no I/O.
func New(cfg Config, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = "0.0.0.0"
	}
	g := &Gateway{cfg: cfg, log: log.With("component", "gateway"), ready: make(chan struct{}), servers: map[string]*boundServer{}}
	g.outliers = newOutliers()
	g.proxy = g.newProxy()
	return g
}

// Ready is closed once the first complete configuration (LDS, RDS, CDS and
// EDS) has been applied and the HTTP listener is bound.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Addr is the bound address of the public HTTP listener (or of the first
// listener when there is none of that name), or nil before Ready.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.servers[publicListener]; b != nil {
		return b.addr
	}
	names := make([]string, 0, len(g.servers))
	for n := range g.servers {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil
	}
	return g.servers[names[0]].addr
}

// AdminAddr is the bound address of the admin listener, or nil when it is
// off or not yet bound.
func (g *Gateway) AdminAddr() net.Addr {
	if a := g.adminAddr.Load(); a != nil {
		return *a
	}
	return nil
}

// AddrOf is the bound address of the named listener, or nil.
func (g *Gateway) AddrOf(listener string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.servers[listener]; b != nil {
		return b.addr
	}
	return nil
}

// Run connects to the xds server, keeps the routing table current and
// serves HTTP until ctx ends. It returns nil on cancellation, or an error
// when the listener cannot be bound.
func (g *Gateway) Run(ctx context.Context) error {
	if len(g.cfg.XDSAddresses) == 0 || slices.Contains(g.cfg.XDSAddresses, "") {
		return errors.New("gateway: no xds address")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatal := make(chan error, 1)
	var wg sync.WaitGroup
	if g.cfg.AdminListen != "" {
		lis, err := net.Listen("tcp", g.cfg.AdminListen)
		if err != nil {
			return fmt.Errorf("gateway admin listener: %w", err)
		}
		addr := lis.Addr()
		g.adminAddr.Store(&addr)
		g.log.Info("admin listener", "address", addr.String())
		wg.Go(func() { g.serveAdmin(ctx, lis) })
	}
	wg.Go(func() {
		if err := g.runXDS(ctx); err != nil {
			fatal <- err
			cancel()
		}
	})
	<-ctx.Done()
	wg.Wait()

	g.mu.Lock()
	servers := g.servers
	g.servers = map[string]*boundServer{}
	g.mu.Unlock()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	for _, b := range servers {
		_ = b.srv.Shutdown(sctx)
	}
	g.serving.Wait()
	select {
	case err := <-fatal:
		return err
	default:
		return nil
	}
}

// apply publishes st and makes sure exactly the listeners it names are
// bound. A listener that cannot be bound is fatal, as in Envoy.
func (g *Gateway) apply(st *edgeState) error {
	g.state.Store(st)
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, b := range g.servers {
		if sp, ok := st.specs[name]; !ok || g.portFor(sp) != b.port || (sp.tls != nil) != b.tls {
			// Gone or moved: drain it in the background.
			delete(g.servers, name)
			g.serving.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = b.srv.Shutdown(ctx)
			})
		}
	}
	names := make([]string, 0, len(st.specs))
	for n := range st.specs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if g.servers[name] != nil {
			continue
		}
		sp := st.specs[name]
		port := g.portFor(sp)
		lis, err := net.Listen("tcp", net.JoinHostPort(g.cfg.ListenHost, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("bind listener %s: %w", name, err)
		}
		srv := &http.Server{
			// No ReadTimeout: it would also cut streaming and long
			// requests, which the route's timeout (the revision's
			// timeoutSeconds) bounds instead; Drop closes a connection
			// whose body the route gave up on.
			Handler:           deadline.Drop(listenerHandler{g: g, name: name}),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       5 * time.Minute,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		if sp.tls != nil {
			srv.Protocols.SetHTTP2(true)
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: g.certificateFor(name)}
		} else {
			// Envoy's codec AUTO also speaks HTTP/2 with prior knowledge.
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		g.serving.Go(func() {
			var err error
			if sp.tls != nil {
				err = srv.ServeTLS(lis, "", "")
			} else {
				err = srv.Serve(lis)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("serve", "listener", name, "error", err)
			}
		})
		g.servers[name] = &boundServer{srv: srv, addr: lis.Addr(), port: port, tls: sp.tls != nil}
		g.log.Info("serving", "listener", name, "address", lis.Addr().String(), "tls", sp.tls != nil)
	}
	return nil
}

func (g *Gateway) portFor(sp listenerSpec) int {
	if sp.name == publicListener && g.cfg.PortOverride != 0 {
		return g.cfg.PortOverride
	}
	return int(sp.port)
}

// certificateFor picks the certificate of listener name by SNI from the
// current state, so a rotated secret applies to the next handshake.
func (g *Gateway) certificateFor(name string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		st := g.state.Load()
		sp, ok := st.specs[name]
		if !ok || sp.tls == nil {
			return nil, fmt.Errorf("listener %s serves no TLS", name)
		}
		secret := sp.tls.secretFor(hello.ServerName)
		if secret == "" {
			return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
		}
		cert := st.certs[secret]
		if cert == nil {
			return nil, fmt.Errorf("certificate %s has not arrived", secret)
		}
		return cert, nil
	}
}

// listenerHandler routes requests of one listener.
type listenerHandler struct {
	g    *Gateway
	name string
}

func (h listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var t *table
	if st := h.g.state.Load(); st != nil {
		t = st.tables[h.name]
	}
	h.g.serve(w, r, t)
}

func (g *Gateway) markReady() {
	g.readyOnce.Do(func() { close(g.ready) })
}

// target is what ServeHTTP decided, handed to the proxy's Rewrite.
type target struct {
	endpoint       string
	upstream       *upstream // the cluster, for a retry on another endpoint
	tls            bool      // the cluster demands mutual TLS
	host           string    // Host to send upstream; "" keeps the client's
	connectTimeout time.Duration
	ops            [4]*headerOps // in the order applied (Envoy's default: cluster first)
}

// internalHeaders are set only by kiln's own hops (xds.InternalHeaders):
// the weighted clusters' revision headers, the activator's K-Proxy-Request
// and the queue-proxy's K-Network-Probe. The gateway drops client-sent
// copies before any route mutation runs, whatever the xDS server sends,
// so a client cannot pick a revision through the activator.
var internalHeaders = []string{"Knative-Serving-Revision", "Knative-Serving-Namespace", "K-Proxy-Request", "K-Network-Probe"}

type targetKey struct{}

// serve routes one request through table t as Envoy would.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, t *table) {
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
	if rt.redirect != nil {
		w.Header().Set("Location", rt.redirect.location(r))
		w.WriteHeader(rt.redirect.code)
		return
	}
	wc := rt.pick()
	if wc == nil || wc.upstream == nil {
		// Envoy's "cluster not found": 503 with an empty body.
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	ep := wc.upstream.pick(g.outliers, nil)
	if ep == "" {
		localReply(w, http.StatusServiceUnavailable, "no healthy upstream")
		return
	}
	if wc.upstream.tls && g.cfg.UpstreamTLS == nil {
		localReply(w, http.StatusServiceUnavailable, "upstream requires mutual TLS and this gateway has no certificate (--tls-cert-file)")
		return
	}
	tg := &target{endpoint: ep, upstream: wc.upstream, tls: wc.upstream.tls, connectTimeout: wc.upstream.connectTimeout, host: rt.hostRewrite,
		ops: [4]*headerOps{&wc.headers, &rt.headers, &vh.headers, &t.headers}}
	if t.mostSpecificWins {
		tg.ops = [4]*headerOps{&t.headers, &vh.headers, &rt.headers, &wc.headers}
	}
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
		TLSClientConfig:     g.cfg.UpstreamTLS,
	}
	return &httputil.ReverseProxy{
		Transport: &retryTransport{base: transport, outliers: g.outliers},
		Rewrite: func(pr *httputil.ProxyRequest) {
			tg := pr.In.Context().Value(targetKey{}).(*target)
			pr.Out.URL.Scheme = "http"
			if tg.tls {
				pr.Out.URL.Scheme = "https"
			}
			pr.Out.URL.Host = tg.endpoint
			// The Host header is kept (Envoy does not rewrite it): the
			// queue-proxy and activator route on it.
			pr.Out.Host = pr.In.Host
			if tg.host != "" {
				pr.Out.Host = tg.host
			}
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
			// RFC 7239 Forwarded, as Knative's ingress sets it: the
			// client's element appended to what came in.
			fwd := forwardedElement(pr.In.RemoteAddr, proto)
			if prior := pr.In.Header.Values("Forwarded"); len(prior) > 0 {
				fwd = strings.Join(prior, ", ") + ", " + fwd
			}
			pr.Out.Header.Set("Forwarded", fwd)
			for _, h := range internalHeaders {
				pr.Out.Header.Del(h)
			}
			// Less specific levels are applied last and win, Envoy's
			// default, unless most_specific_header_mutations_wins is set.
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

// forwardedElement is the RFC 7239 Forwarded element of one hop: the
// client at remoteAddr (an IPv6 address quoted and bracketed, as section 6
// asks; "unknown" when it cannot be told) using proto.
func forwardedElement(remoteAddr, proto string) string {
	node := "unknown"
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.Unmap()
			if ip.Is4() {
				node = ip.String()
			} else {
				node = `"[` + ip.String() + `]"`
			}
		}
	}
	return "for=" + node + ";proto=" + proto
}
