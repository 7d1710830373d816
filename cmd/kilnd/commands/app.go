package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/shutdown"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
)

// Version is set at build time.
var Version = "dev"

// NewApp returns the kilnd command tree.
func NewApp() *cli.App {
	return &cli.App{
		Name:    "kilnd",
		Usage:   "kiln server roles: Knative Serving on plain VMs",
		Version: Version,
		Description: `Each role runs as its own process (and systemd unit); they coordinate through etcd.
Singleton roles (controller, scheduler, autoscaler) campaign for leadership, so
running two of each is safe: only the leader acts. 'kilnd dev' runs every role
in one process on an embedded etcd for a single-machine setup.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "etcd-endpoints", Usage: "etcd client URLs", Value: cli.NewStringSlice("http://127.0.0.1:2379"), EnvVars: []string{"KILN_ETCD_ENDPOINTS"}},
			&cli.StringFlag{Name: "etcd-cacert", Usage: "CA bundle that signed the etcd server certificates (enables TLS)", EnvVars: []string{"KILN_ETCD_CACERT"}},
			&cli.StringFlag{Name: "etcd-cert", Usage: "client certificate for etcd", EnvVars: []string{"KILN_ETCD_CERT"}},
			&cli.StringFlag{Name: "etcd-key", Usage: "client key for etcd", EnvVars: []string{"KILN_ETCD_KEY"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: []string{"KILN_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"KILN_LOG_FORMAT"}},
			&cli.DurationFlag{Name: "leader-ttl", Usage: "leader session TTL of the singleton roles (controller, scheduler, autoscaler), whole seconds: a crashed leader is replaced after about this long",
				Value: election.DefaultTTL, EnvVars: []string{"KILN_LEADER_TTL"}},
		},
		Before: func(c *cli.Context) error {
			ttl := c.Duration("leader-ttl")
			if ttl < time.Second || ttl%time.Second != 0 {
				return fmt.Errorf("--leader-ttl %v: must be a whole number of seconds, at least 1s", ttl)
			}
			leaderTTL = ttl
			logArgs = []string{"--log-level", c.String("log-level"), "--log-format", c.String("log-format")}
			return nil
		},
		Commands: []*cli.Command{
			apiserverCommand, controllerCommand, schedulerCommand, autoscalerCommand,
			activatorCommand, xdsCommand, gatewayCommand, agentCommand, queueCommand, devCommand,
			adminCommand,
		},
	}
}

func logger(c *cli.Context) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

func dialEtcd(c *cli.Context) (*etcdstore.Store, error) {
	eps := c.StringSlice("etcd-endpoints")
	for i, e := range eps {
		if !strings.Contains(e, "://") {
			eps[i] = "http://" + e
		}
	}
	tlsCfg, err := etcdTLS(c)
	if err != nil {
		return nil, err
	}
	st, err := etcdstore.DialTLS(eps, 5*time.Second, tlsCfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if _, _, err := st.List(ctx, "/kiln/health-check-nonexistent"); err != nil {
		st.Close()
		return nil, fmt.Errorf("etcd at %v is not answering: %w", eps, err)
	}
	return st, nil
}

func identity() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// leaderTTL is --leader-ttl, set once before any role starts.
var leaderTTL = election.DefaultTTL

// logArgs are the global --log-level and --log-format as given, set once
// before any role starts: the agent passes them on to the kilnd queue
// processes it starts, so their logs look like its own.
var logArgs []string

// lead runs fn under leader election for role until ctx ends.
func lead(ctx context.Context, st *etcdstore.Store, role string, log *slog.Logger, fn election.LeadFunc) error {
	return election.Run(ctx, st.Client(), election.Config{Role: role, Identity: identity(), TTL: leaderTTL}, log, fn)
}

// serveHTTPWith listens on addr and serves h (over TLS when tlsCfg is
// set) in g until ctx (g's context) ends, then shuts down gracefully,
// giving requests in flight shutdownGrace.
func serveHTTPWith(ctx context.Context, g *errgroup.Group, addr string, h http.Handler, tlsCfg *tls.Config, log *slog.Logger) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		lis, scheme = tls.NewListener(lis, tlsCfg), "https"
	}
	return serveOn(ctx, g, lis, scheme, h, log)
}

// serveOn is serveHTTPWith on a listener already bound; scheme names it in logs
// and errors.
func serveOn(ctx context.Context, g *errgroup.Group, lis net.Listener, scheme string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	return serveOnGrace(ctx, g, lis, scheme, h, shutdownGrace, log)
}

// shutdownGrace is how long a stopping role's HTTP server lets requests in
// flight finish (http.Server.Shutdown) before it cuts them.
const shutdownGrace = 10 * time.Second

// serveOnGrace is serveOn giving requests in flight grace to finish once
// ctx ends.
func serveOnGrace(ctx context.Context, g *errgroup.Group, lis net.Listener, scheme string, h http.Handler, grace time.Duration, log *slog.Logger) (net.Addr, error) {
	// No ReadTimeout: it would end watches (apiserver) and requests the
	// activator holds for a revision's timeoutSeconds; the handlers bound
	// bodies themselves (internal/deadline).
	// Watches end when stopping closes (internal/shutdown); other
	// requests get grace to finish.
	stopping := make(chan struct{})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return shutdown.With(context.Background(), stopping) }}
	g.Go(func() error {
		if err := srv.Serve(lis); err != http.ErrServerClosed {
			return fmt.Errorf("serve %s on %s: %w", scheme, lis.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		close(stopping)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// A stop is not a failure of the role: what outlived the
			// grace is cut.
			log.Warn("requests still in flight after the shutdown grace; closing their connections", "address", lis.Addr().String(), "grace", grace, "error", err)
			_ = srv.Close()
		}
		return nil
	})
	log.Info("serving "+scheme, "address", lis.Addr().String())
	return lis.Addr(), nil
}

// etcdTLS builds the client TLS config from --etcd-cacert/--etcd-cert/--etcd-key.
func etcdTLS(c *cli.Context) (*tls.Config, error) {
	ca, cert, key := c.String("etcd-cacert"), c.String("etcd-cert"), c.String("etcd-key")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificates found", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("--etcd-cert and --etcd-key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
