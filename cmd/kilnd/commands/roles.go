package commands

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/agent"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/reporter"
	"github.com/kiln-serving/kiln/internal/sdnotify"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
	"github.com/kiln-serving/kiln/scheduler"
	"github.com/kiln-serving/kiln/services/activator"
	"github.com/kiln-serving/kiln/services/apiserver"
	"github.com/kiln-serving/kiln/services/autoscaler"
	"github.com/kiln-serving/kiln/services/controller"
	"github.com/kiln-serving/kiln/services/gateway"
	"github.com/kiln-serving/kiln/xds"
)

// roleFunc runs one role until ctx ends. ready is called once it serves.
type roleFunc func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error

// runRole is the body of every single-role command.
func runRole(c *cli.Context, name string, fn roleFunc) error {
	log, err := logger(c)
	if err != nil {
		return err
	}
	log = log.With("role", name)
	ctx, cancel := signalContext(c.Context)
	defer cancel()
	var st *etcdstore.Store
	if name != "gateway" {
		if st, err = dialEtcd(c); err != nil {
			return err
		}
		defer st.Close()
	}
	err = fn(ctx, st, log, func() {
		log.Info("ready")
		sdnotify.Ready()
	})
	sdnotify.Stopping()
	return err
}

// --- apiserver ---

var apiserverFlags = []cli.Flag{
	&cli.StringFlag{Name: "listen", Usage: "REST API address", Value: ":7070", EnvVars: []string{"KILN_APISERVER_LISTEN"}},
	&cli.StringFlag{Name: "token-file", Usage: "file holding the bootstrap bearer token, the cluster-admin \"admin\" that issues other tokens (required unless --insecure)", EnvVars: []string{"KILN_TOKEN_FILE"}},
	&cli.StringFlag{Name: "tls-cert-file", Usage: "serve HTTPS with this PEM certificate (chain)", EnvVars: []string{"KILN_TLS_CERT_FILE"}},
	&cli.StringFlag{Name: "tls-key-file", Usage: "private key of --tls-cert-file", EnvVars: []string{"KILN_TLS_KEY_FILE"}},
	&cli.StringFlag{Name: "client-ca-file", Usage: "also accept client certificates issued by this CA (the kiln CA): a user identity's name is the subject", EnvVars: []string{"KILN_CLIENT_CA_FILE"}},
	&cli.BoolFlag{Name: "insecure", Usage: "serve plain HTTP without authentication (loopback addresses only, for development)"},
	&cli.StringFlag{Name: "gateway-endpoint", Usage: "the edge as the knative-serving/kiln-gateway Service shows it: http=HOST:PORT[,https=HOST:PORT] (no such Service when empty)", EnvVars: []string{"KILN_GATEWAY_ENDPOINT"}},
	&cli.StringFlag{Name: "node-ca-file", Usage: "kiln CA the agents' node API (pod logs) is verified with; with --node-cert-file and --node-key-file, calls it with mutual TLS", EnvVars: []string{"KILN_NODE_CA_FILE"}},
	&cli.StringFlag{Name: "node-cert-file", Usage: "apiserver certificate (kiln admin tls cert create --role apiserver) presented to the agents' node API", EnvVars: []string{"KILN_NODE_CERT_FILE"}},
	&cli.StringFlag{Name: "node-key-file", Usage: "private key of --node-cert-file", EnvVars: []string{"KILN_NODE_KEY_FILE"}},
	encryptionKeyFlag,
}

var apiserverCommand = &cli.Command{
	Name:  "apiserver",
	Usage: "serve the serving.knative.dev/v1 REST API (active-active)",
	Flags: apiserverFlags,
	Action: func(c *cli.Context) error {
		insecure := c.Bool("insecure")
		if insecure {
			if err := checkInsecure(c.String("listen"), "--listen"); err != nil {
				return err
			}
			if c.String("tls-cert-file") != "" || c.String("client-ca-file") != "" {
				return fmt.Errorf("--insecure serves plain HTTP: drop it, or the TLS flags")
			}
		}
		opts, err := apiserverOptions(c.String("token-file"), insecure)
		if err != nil {
			return err
		}
		tlsCfg, err := apiserverTLS(c.String("tls-cert-file"), c.String("tls-key-file"), c.String("client-ca-file"))
		if err != nil {
			return err
		}
		if err := apiserverViews(&opts, c.String("gateway-endpoint"),
			pki.Files{CA: c.String("node-ca-file"), Cert: c.String("node-cert-file"), Key: c.String("node-key-file")}); err != nil {
			return err
		}
		return runRole(c, "apiserver", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			if opts.SecretKeys, err = secretKeys(c.String("encryption-key-file"), log); err != nil {
				return err
			}
			return runAPIServer(ctx, st, c.String("listen"), opts, tlsCfg, log, ready)
		})
	},
}

func apiserverOptions(tokenFile string, insecure bool) (apiserver.Options, error) {
	if insecure {
		return apiserver.Options{Insecure: true}, nil
	}
	if tokenFile == "" {
		return apiserver.Options{}, fmt.Errorf("--token-file is required (or --insecure for loopback development)")
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return apiserver.Options{}, fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return apiserver.Options{}, fmt.Errorf("--token-file %s is empty", tokenFile)
	}
	return apiserver.Options{Token: tok}, nil
}

// apiserverViews sets what the core/v1 views need: the edge the gateway
// Service describes and the TLS to the agents' node API (plain when tf is
// empty).
func apiserverViews(opts *apiserver.Options, gateway string, tf pki.Files) error {
	if gateway != "" {
		ep, err := apiserver.ParseGatewayEndpoint(gateway)
		if err != nil {
			return fmt.Errorf("--gateway-endpoint: %w", err)
		}
		opts.Gateway = ep
	}
	var err error
	if opts.NodeTLS, err = mtls.ClientTLS(tf, pki.RoleAgent); err != nil {
		return fmt.Errorf("--node-ca-file/--node-cert-file/--node-key-file: %w", err)
	}
	return nil
}

// checkInsecure refuses to serve the API without authentication anywhere
// but loopback: anyone who can reach it would be cluster-admin.
func checkInsecure(addr, flag string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--insecure serves the API without authentication and is allowed only on a loopback address (127.0.0.1, ::1, localhost); %s is %q", flag, addr)
}

// apiserverTLS is the listener's TLS configuration, nil for plain HTTP.
// With a client CA, a certificate is asked for but not required: bearer
// tokens keep working beside certificates.
func apiserverTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		if clientCAFile != "" {
			return nil, fmt.Errorf("--client-ca-file needs HTTPS: set --tls-cert-file and --tls-key-file")
		}
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("HTTPS needs both --tls-cert-file and --tls-key-file")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate", clientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

func runAPIServer(ctx context.Context, st *etcdstore.Store, addr string, opts apiserver.Options, tlsCfg *tls.Config, log *slog.Logger, ready func()) error {
	if tlsCfg == nil && checkInsecure(addr, "--listen") != nil {
		// Bearer tokens would cross the network in clear.
		return fmt.Errorf("the API serves plain HTTP only on a loopback address: set --tls-cert-file and --tls-key-file to serve %q over HTTPS", addr)
	}
	h := apiserver.New(registry.New(st), opts, log)
	g, ctx := errgroup.WithContext(ctx)
	// Resumes namespace deletions an apiserver left half-done.
	g.Go(func() error { return apiserver.FinishNamespaceDeletions(ctx, st, log) })
	if _, err := serveHTTPWith(ctx, g, addr, h, tlsCfg, log); err != nil {
		return err
	}
	ready()
	return g.Wait()
}

// --- controller ---

// controllerFlags is empty: route domains, URL templates and the external
// scheme come from the cluster configs (`kiln config set domain|network`),
// read live, so changing them needs no restart. The former --domain,
// --domain-template and --tag-template flags are gone for that reason.
var controllerFlags []cli.Flag

// runController leads with a live view of the cluster configs.
func runController(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
	cw := liveconfig.NewWatcher(st, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cw.Run(ctx) })
	ready()
	ctl := controller.New(st, controller.Options{Config: cw}, log)
	g.Go(func() error { return lead(ctx, st, "controller", log, ctl.Lead) })
	return g.Wait()
}

var controllerCommand = &cli.Command{
	Name:  "controller",
	Usage: "reconcile Services, Configurations, Revisions and Routes (leader-elected)",
	Flags: controllerFlags,
	Action: func(c *cli.Context) error {
		return runRole(c, "controller", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			return runController(ctx, st, log, ready)
		})
	},
}

// --- scheduler ---

var schedulerCommand = &cli.Command{
	Name:  "scheduler",
	Usage: "place revision instances on nodes (leader-elected)",
	Action: func(c *cli.Context) error {
		return runRole(c, "scheduler", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			ready()
			s := scheduler.New(st, scheduler.Options{}, log)
			return lead(ctx, st, "scheduler", log, s.Lead)
		})
	},
}

// --- autoscaler ---

var autoscalerFlags = []cli.Flag{
	&cli.StringFlag{Name: "listen", Usage: "gRPC address for metrics and pokes", Value: ":8090", EnvVars: []string{"KILN_AUTOSCALER_LISTEN"}},
	&cli.StringFlag{Name: "advertise", Usage: "host:port agents and activators reach this replica at, published when it leads (default: the listen address; 127.0.0.1 when listening on all interfaces)", EnvVars: []string{"KILN_AUTOSCALER_ADVERTISE"}},
	&cli.DurationFlag{Name: "tick", Usage: "how often every revision's scale is decided", Value: 2 * time.Second},
}

var autoscalerCommand = &cli.Command{
	Name:  "autoscaler",
	Usage: "decide each revision's scale from request metrics (KPA; leader-elected, serves gRPC on every replica)",
	Flags: withTLSFlags(autoscalerFlags),
	Action: func(c *cli.Context) error {
		tf, err := roleTLS(c)
		if err != nil {
			return err
		}
		return runRole(c, "autoscaler", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			return runAutoscaler(ctx, st, c.String("listen"), c.String("advertise"), autoscaler.Options{Tick: c.Duration("tick")}, tf, log, ready)
		})
	},
}

// runAutoscaler serves the Autoscaler gRPC service and campaigns with the
// advertised address as identity, so senders find the leader with
// election.Observe. With tf, only agents and activators may call it.
func runAutoscaler(ctx context.Context, st *etcdstore.Store, addr, advertise string, opts autoscaler.Options, tf pki.Files, log *slog.Logger, ready func()) error {
	mtls.WarnPlain(log, tf)
	gopts, err := mtls.GRPCServerOptions(tf, autoscaler.CallerCheck)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if advertise == "" {
		advertise = advertiseAddr(lis.Addr())
	}
	a := autoscaler.New(st, registry.New(st), opts, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Serve(ctx, lis, gopts...) })
	log.Info("serving autoscaler gRPC", "address", lis.Addr().String(), "advertise", advertise)
	ready()
	g.Go(func() error {
		return election.Run(ctx, st.Client(), election.Config{Role: "autoscaler", Identity: advertise, TTL: leaderTTL}, log, a.Lead)
	})
	return g.Wait()
}

// advertiseAddr is a listener's address as others on this machine reach
// it: loopback in place of the unspecified address.
func advertiseAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// --- activator ---

var activatorFlags = []cli.Flag{
	&cli.StringFlag{Name: "listen", Usage: "activator HTTP address", Value: ":8012", EnvVars: []string{"KILN_ACTIVATOR_LISTEN"}},
	&cli.StringFlag{Name: "advertise", Usage: "host:port edges reach this activator at, registered under activators/ on a lease so the xds server routes to every live activator (default: the listen address; 127.0.0.1 when listening on all interfaces)", EnvVars: []string{"KILN_ACTIVATOR_ADVERTISE"}},
	&cli.DurationFlag{Name: "drain-delay", Usage: "on SIGTERM, how long the activator keeps accepting requests after deregistering from activators/, while edges move away", Value: 2 * time.Second, EnvVars: []string{"KILN_ACTIVATOR_DRAIN_DELAY"}},
	&cli.DurationFlag{Name: "shutdown-timeout", Usage: "on SIGTERM, how long requests in flight get to finish once the activator stops accepting (a revision's timeoutSeconds up to it is not cut short)", Value: 5 * time.Minute, EnvVars: []string{"KILN_ACTIVATOR_SHUTDOWN_TIMEOUT"}},
}

// activatorStop is how a stopping activator hands off: deregister, keep
// serving for drainDelay, then stop accepting and give requests in flight
// up to timeout.
type activatorStop struct {
	drainDelay, timeout time.Duration
}

func activatorStopFlags(c *cli.Context) (activatorStop, error) {
	s := activatorStop{drainDelay: c.Duration("drain-delay"), timeout: c.Duration("shutdown-timeout")}
	if s.drainDelay < 0 {
		return s, fmt.Errorf("--drain-delay %v: must not be negative", s.drainDelay)
	}
	if s.timeout <= 0 {
		return s, fmt.Errorf("--shutdown-timeout %v: must be positive", s.timeout)
	}
	return s, nil
}

var activatorCommand = &cli.Command{
	Name:  "activator",
	Usage: "buffer requests for revisions without ready capacity (active-active)",
	Flags: withTLSFlags(activatorFlags),
	Action: func(c *cli.Context) error {
		stop, err := activatorStopFlags(c)
		if err != nil {
			return err
		}
		tf, err := roleTLS(c)
		if err != nil {
			return err
		}
		return runRole(c, "activator", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			return runActivator(ctx, st, c.String("listen"), c.String("advertise"), stop, tf, log, ready)
		})
	},
}

// activatorCallers may send the activator requests: edges.
var activatorCallers = pki.Allow(pki.RoleGateway)

// runActivator serves the activator; with tf only edges may call it, and
// it presents tf to queue-proxies and the autoscaler. When ctx ends it
// hands off as stop says, still following the cluster (requests it holds
// wait for instances) until the last request has left.
func runActivator(ctx context.Context, st *etcdstore.Store, addr, advertise string, stop activatorStop, tf pki.Files, log *slog.Logger, ready func()) error {
	mtls.WarnPlain(log, tf)
	upstream, err := mtls.ClientTLS(tf, pki.RoleAgent)
	if err != nil {
		return err
	}
	creds, err := mtls.GRPCDialOption(tf, pki.RoleAutoscaler)
	if err != nil {
		return err
	}
	if advertise == "" {
		advertise = addr
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				advertise = net.JoinHostPort("127.0.0.1", port)
			}
		}
	}
	a := activator.New(st, activator.Options{Identity: identity(), Autoscaler: autoscalerLeaders(st), Advertise: advertise,
		UpstreamTLS: upstream, AutoscalerCreds: creds}, log)
	// Run and the server outlive ctx: accepting ends after the hand-off,
	// Run once the server has shut down.
	bg := context.WithoutCancel(ctx)
	accept, stopAccepting := context.WithCancel(bg)
	defer stopAccepting()
	// A server that fails ends its group's ctx, and so its shutdown.
	srv, srvCtx := errgroup.WithContext(accept)
	if _, err := serveHTTPMutualGrace(srvCtx, srv, addr, a.Handler(), tf, activatorCallers, stop.timeout, log); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Wait() }()
	runCtx, stopRun := context.WithCancel(bg)
	defer stopRun()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()
	ready()
	select {
	case err := <-served:
		stopRun()
		return errors.Join(err, <-ran)
	case err := <-ran:
		stopAccepting()
		return errors.Join(err, <-served)
	case <-ctx.Done():
	}

	t0 := time.Now()
	dctx, cancel := context.WithTimeout(bg, 5*time.Second)
	if err := a.Deregister(dctx); err != nil {
		log.Warn("deregister activator", "error", err)
	}
	cancel()
	log.Info("activator deregistered; accepting while edges move away", "drain_delay", stop.drainDelay)
	select {
	case <-time.After(stop.drainDelay):
		stopAccepting()
		err = <-served
	case err = <-served:
	}
	log.Info("activator stopped accepting; requests in flight ended", "handoff_ms", time.Since(t0).Milliseconds())
	// The last requests are answered: Run may stop following the cluster.
	stopRun()
	return errors.Join(err, <-ran)
}

// --- xds ---

var xdsFlags = []cli.Flag{
	&cli.StringFlag{Name: "listen", Usage: "ADS gRPC address", Value: ":18000", EnvVars: []string{"KILN_XDS_LISTEN"}},
	&cli.UintFlag{Name: "http-port", Usage: "HTTP port the edges listen on", Value: 8080},
	&cli.UintFlag{Name: "https-port", Usage: "HTTPS port the edges listen on (served when a DomainMapping has a TLS secret, or with --default-tls-secret)", Value: 8443},
	&cli.UintFlag{Name: "internal-port", Usage: "port of the edges' internal listener, serving every route under NAME.NAMESPACE.svc.cluster.local (cluster-local routes only there)", Value: 8081},
	&cli.StringFlag{Name: "default-tls-secret", Usage: "NAMESPACE/NAME of a TLS secret served on the HTTPS port to server names no DomainMapping claims"},
	&cli.StringFlag{Name: "activator-address", Usage: "host:port of the activator, the endpoint of revisions without ready instances, used only while no activator is registered under activators/ (each registers its --advertise address)", Value: "127.0.0.1:8012", EnvVars: []string{"KILN_ACTIVATOR_ADDRESS"}},
	encryptionKeyFlag,
}

func xdsOptions(c *cli.Context) xds.Options {
	return xds.Options{HTTPPort: uint32(c.Uint("http-port")), ActivatorAddress: c.String("activator-address"),
		HTTPSPort: uint32(c.Uint("https-port")), InternalPort: uint32(c.Uint("internal-port")), DefaultTLSSecret: c.String("default-tls-secret")}
}

var xdsCommand = &cli.Command{
	Name:  "xds",
	Usage: "serve Envoy configuration over ADS (active-active)",
	Flags: withTLSFlags(xdsFlags),
	Action: func(c *cli.Context) error {
		opts := xdsOptions(c)
		tf, err := roleTLS(c)
		if err != nil {
			return err
		}
		return runRole(c, "xds", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			var err error
			if opts.SecretKeys, err = secretKeys(c.String("encryption-key-file"), log); err != nil {
				return err
			}
			return runXDS(ctx, st, c.String("listen"), opts, tf, log, ready)
		})
	},
}

// runXDS serves ADS; with tf only edges may subscribe (and so receive SDS
// secrets), and edges are told to speak mutual TLS to revisions' endpoints.
func runXDS(ctx context.Context, st *etcdstore.Store, addr string, opts xds.Options, tf pki.Files, log *slog.Logger, ready func()) error {
	mtls.WarnPlain(log, tf)
	gopts, err := mtls.GRPCServerOptions(tf, xds.Callers)
	if err != nil {
		return err
	}
	if tf.Enabled() {
		if opts.UpstreamCA, err = os.ReadFile(tf.CA); err != nil {
			return fmt.Errorf("--tls-ca-file: %w", err)
		}
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Info("serving ADS", "address", lis.Addr().String())
	ready()
	return xds.NewServer(st, opts, log).Run(ctx, lis, gopts...)
}

// --- gateway ---

var gatewayFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "xds-address", Usage: "host:port of an xds server; repeat it (or separate with commas) for each replica: a failed stream moves to the next at once", Value: cli.NewStringSlice("127.0.0.1:18000"), EnvVars: []string{"KILN_XDS_ADDRESS"}},
	&cli.StringFlag{Name: "node-id", Usage: "xDS node id of this edge (default: hostname)"},
	&cli.StringFlag{Name: "listen-host", Usage: "host the HTTP listener binds", Value: "0.0.0.0"},
	&cli.IntFlag{Name: "port", Usage: "HTTP port; 0 uses the port the xds listener names"},
	&cli.StringFlag{Name: "admin-listen", Usage: "host:port of an Envoy-style admin listener (/ready, /config_dump); off when empty; keep it on loopback"},
}

func gatewayConfig(c *cli.Context) gateway.Config {
	id := c.String("node-id")
	if id == "" {
		id, _ = os.Hostname()
	}
	return gateway.Config{XDSAddresses: c.StringSlice("xds-address"), NodeID: id, ListenHost: c.String("listen-host"), PortOverride: c.Int("port"), AdminListen: c.String("admin-listen")}
}

var gatewayCommand = &cli.Command{
	Name:  "gateway",
	Usage: "HTTP edge driven by xDS, for installs without Envoy",
	Flags: withTLSFlags(gatewayFlags),
	Action: func(c *cli.Context) error {
		cfg := gatewayConfig(c)
		tf, err := roleTLS(c)
		if err != nil {
			return err
		}
		return runRole(c, "gateway", func(ctx context.Context, _ *etcdstore.Store, log *slog.Logger, ready func()) error {
			return runGateway(ctx, cfg, tf, log, ready)
		})
	},
}

// runGateway runs the edge; with tf it presents tf to the xds server and
// to revisions' endpoints. Its public listeners stay as xDS says: end
// users bring no kiln certificate.
func runGateway(ctx context.Context, cfg gateway.Config, tf pki.Files, log *slog.Logger, ready func()) error {
	mtls.WarnPlain(log, tf)
	var err error
	if cfg.XDSCreds, err = mtls.GRPCDialOption(tf, pki.RoleXDS); err != nil {
		return err
	}
	if cfg.UpstreamTLS, err = mtls.ClientTLS(tf, pki.RoleAgent, pki.RoleActivator); err != nil {
		return err
	}
	gw := gateway.New(cfg, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gw.Run(ctx) })
	select {
	case <-gw.Ready():
		ready()
	case <-ctx.Done():
	}
	return g.Wait()
}

// --- agent ---

var agentFlags = []cli.Flag{
	&cli.StringFlag{Name: "node-name", Usage: "name of this node (default: hostname)", EnvVars: []string{"KILN_NODE_NAME"}},
	&cli.StringFlag{Name: "address", Usage: "address queue-proxies listen on and advertise", Value: "127.0.0.1", EnvVars: []string{"KILN_NODE_ADDRESS"}},
	&cli.StringFlag{Name: "containerd-address", Usage: "containerd socket", Value: "/run/containerd/containerd.sock", EnvVars: []string{"KILN_CONTAINERD_ADDRESS"}},
	&cli.StringFlag{Name: "containerd-namespace", Usage: "containerd namespace for kiln's containers", Value: "kiln"},
	&cli.StringFlag{Name: "state-dir", Usage: "agent state: logs, network namespaces, IPAM, emptyDir volumes", Value: "/var/lib/kiln/agent"},
	&cli.StringFlag{Name: "volume-root", Usage: "persistent volume claims: claim NAME in namespace NS is the directory DIR/NS/NAME (created on first use, never removed)", Value: "/var/lib/kiln/volumes", EnvVars: []string{"KILN_VOLUME_ROOT"}},
	&cli.StringFlag{Name: "cni-bin-dir", Usage: "CNI plugin binaries", Value: "/usr/lib/cni"},
	&cli.StringFlag{Name: "bridge", Usage: "CNI bridge name", Value: "kiln0"},
	&cli.StringFlag{Name: "subnet", Usage: "CNI subnet for instances", Value: "10.88.0.0/16"},
	&cli.BoolFlag{Name: "host-network", Usage: "run instances in the host network namespace (no CNI); the agent assigns PORT"},
	&cli.BoolFlag{Name: "network-isolation", Value: true, Usage: "keep instances from reaching this node and each other (nftables; config-network namespace-internal-traffic opens a namespace's instances to each other); needs nftables and br_netfilter"},
	&cli.IntFlag{Name: "max-instances", Usage: "instances this node runs at most", Value: 100},
	&cli.StringSliceFlag{Name: "plain-http-registry", Usage: "registry host pulled over plain HTTP (repeatable; localhost is always allowed)", EnvVars: []string{"KILN_PLAIN_HTTP_REGISTRIES"}},
	&cli.Int64Flag{Name: "pids-limit", Usage: "processes and threads each container may have (pids cgroup); negative for no limit", Value: 1024, EnvVars: []string{"KILN_PIDS_LIMIT"}},
	&cli.StringFlag{Name: "node-api-listen", Usage: "address of the node API the apiserver reads container logs from (mutual TLS admitting the apiserver only, with --tls-*); advertised as --address and its port; off when empty", Value: ":10250", EnvVars: []string{"KILN_NODE_API_LISTEN"}},
	&cli.BoolFlag{Name: "stop-on-exit", Usage: "stop every instance when the agent exits (default: leave them running and re-adopt them on restart)"},
	&cli.DurationFlag{Name: "lease-ttl", Usage: "node lease TTL, whole seconds, at least 2s: a node whose agent is gone this long is dropped and its instances placed elsewhere, and an agent cut off from etcd this long stops its instances", Value: agent.DefaultLeaseTTL, EnvVars: []string{"KILN_NODE_LEASE_TTL"}},
}

func agentConfig(c *cli.Context) (agent.Config, error) {
	name := c.String("node-name")
	if name == "" {
		name, _ = os.Hostname()
	}
	ttl := c.Duration("lease-ttl")
	if err := agent.CheckLeaseTTL(ttl); err != nil {
		return agent.Config{}, fmt.Errorf("--lease-ttl %w", err)
	}
	return agent.Config{
		LeaseTTL: ttl,
		NodeName: name, Address: c.String("address"), ContainerdAddress: c.String("containerd-address"),
		Namespace: c.String("containerd-namespace"), StateDir: c.String("state-dir"), VolumeRoot: c.String("volume-root"), CNIBinDir: c.String("cni-bin-dir"),
		BridgeName: c.String("bridge"), Subnet: c.String("subnet"), HostNetwork: c.Bool("host-network"), NetworkIsolation: c.Bool("network-isolation"),
		MaxInstances: c.Int("max-instances"), PlainHTTPRegistries: c.StringSlice("plain-http-registry"),
		StopOnExit: c.Bool("stop-on-exit"), PidsLimit: c.Int64("pids-limit"),
	}, nil
}

// nodeAPICallers may call the agent's node API: the apiserver.
var nodeAPICallers = pki.Allow(pki.RoleAPIServer)

var agentCommand = &cli.Command{
	Name:  "agent",
	Usage: "run placed instances on this node with containerd (one per worker VM)",
	Flags: withTLSFlags(append(slices.Clip(agentFlags), encryptionKeyFlag)),
	Action: func(c *cli.Context) error {
		cfg, err := agentConfig(c)
		if err != nil {
			return err
		}
		tf, err := roleTLS(c)
		if err != nil {
			return err
		}
		// The agent opens the Secrets its instances refer to with the
		// apiserver's keys; without them it reads only plain ones.
		if p := c.String("encryption-key-file"); p != "" {
			if cfg.SecretKeys, err = encryption.Load(p); err != nil {
				return fmt.Errorf("--encryption-key-file: %w", err)
			}
		}
		return runRole(c, "agent", func(ctx context.Context, st *etcdstore.Store, log *slog.Logger, ready func()) error {
			return runAgent(ctx, st, cfg, c.String("node-api-listen"), tf, log, ready)
		})
	},
}

// runAgent runs the node agent; with tf its queue-proxies serve mutual TLS
// (edges and activators only) and it reports to the autoscaler with tf. The
// certificate's name must be the node's: the autoscaler takes an agent's
// metrics only as agent/<its certificate's name>.
func runAgent(ctx context.Context, st *etcdstore.Store, cfg agent.Config, apiListen string, tf pki.Files, log *slog.Logger, ready func()) error {
	mtls.WarnPlain(log, tf)
	var err error
	if cfg.QueueTLS, err = mtls.ServerTLS(tf); err != nil {
		return err
	}
	if cfg.QueueTLS != nil {
		id, err := pki.IdentityOf(cfg.QueueTLS.Certificates[0].Leaf)
		if err != nil {
			return fmt.Errorf("--tls-cert-file: %w", err)
		}
		if id.Role != pki.RoleAgent || id.Name != cfg.NodeName {
			return fmt.Errorf("--tls-cert-file is %s; the agent of node %q needs agent/%s (kiln admin tls cert create --role agent --node %s)", id, cfg.NodeName, cfg.NodeName, cfg.NodeName)
		}
	}
	if cfg.AutoscalerCreds, err = mtls.GRPCDialOption(tf, pki.RoleAutoscaler); err != nil {
		return err
	}
	cfg.AutoscalerLeaders = autoscalerLeaders(st)
	// Each instance's queue-proxy is a kilnd queue process of its own,
	// which outlives this agent and is adopted again by the next one.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable, to start queue-proxies with: %w", err)
	}
	cfg.QueueCommand, cfg.QueueTLSFiles = append(append([]string{exe}, logArgs...), "queue"), tf
	g, ctx := errgroup.WithContext(ctx)
	if apiListen != "" {
		addr, err := serveHTTPMutual(ctx, g, apiListen, agent.LogsHandler(cfg.StateDir), tf, nodeAPICallers, log)
		if err != nil {
			return fmt.Errorf("--node-api-listen: %w", err)
		}
		_, port, _ := net.SplitHostPort(addr.String())
		cfg.APIAddress = net.JoinHostPort(cfg.Address, port)
	}
	a, err := agent.New(cfg, st, log)
	if err != nil {
		return err
	}
	cw := liveconfig.NewWatcher(st, log)
	g.Go(func() error { return cw.Run(ctx) })
	g.Go(func() error { return followNamespaceTraffic(ctx, cw, a, log) })
	ready()
	g.Go(func() error { return a.Run(ctx) })
	return g.Wait()
}

// followNamespaceTraffic keeps the agent's isolation rules in step with
// config-network's namespace-internal-traffic.
func followNamespaceTraffic(ctx context.Context, cw *liveconfig.Watcher, a *agent.Agent, log *slog.Logger) error {
	for {
		changed := cw.Changed()
		if err := a.OpenNamespaces(ctx, cw.Current().Network().NamespaceInternalTraffic); err != nil {
			log.Error("apply namespace-internal-traffic", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// autoscalerLeaders follows the autoscaler leader's advertised host:port,
// where agents and activators send metrics and pokes.
func autoscalerLeaders(st *etcdstore.Store) reporter.Leaders {
	return func(ctx context.Context) <-chan string { return election.Observe(ctx, st.Client(), "autoscaler") }
}

// ensureToken reads the token at path, creating a random one if missing.
func ensureToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

type (
	apiOptions = apiserver.Options
	gatewayCfg = gateway.Config
)
