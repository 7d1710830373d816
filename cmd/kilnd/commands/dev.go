package commands

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/internal/embedetcd"
	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/sdnotify"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
	"github.com/kiln-serving/kiln/scheduler"
	"github.com/kiln-serving/kiln/services/autoscaler"
)

func devFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Usage: "etcd data, token and agent state", Value: "/var/lib/kiln/dev", EnvVars: []string{"KILN_DATA_DIR"}},
		&cli.StringFlag{Name: "etcd-listen", Usage: "embedded etcd client address", Value: "127.0.0.1:2379"},
		&cli.StringFlag{Name: "api-listen", Usage: "REST API address", Value: "127.0.0.1:7070"},
		&cli.StringFlag{Name: "activator-listen", Usage: "activator address", Value: "127.0.0.1:8012"},
		&cli.StringFlag{Name: "autoscaler-listen", Usage: "autoscaler gRPC address (metrics, pokes)", Value: "127.0.0.1:8090"},
		&cli.StringFlag{Name: "xds-listen", Usage: "ADS address", Value: "127.0.0.1:18000"},
		&cli.UintFlag{Name: "http-port", Usage: "gateway HTTP port", Value: 8080},
		&cli.UintFlag{Name: "https-port", Usage: "gateway HTTPS port (DomainMappings with a TLS secret)", Value: 8443},
		&cli.UintFlag{Name: "internal-port", Usage: "gateway internal (cluster-local) port", Value: 8081},
		&cli.StringFlag{Name: "gateway-listen-host", Usage: "host the gateway binds", Value: "127.0.0.1"},
		&cli.StringFlag{Name: "admin-listen", Usage: "gateway admin listener (/ready, /config_dump); the default is skipped when its port is busy; empty to disable", Value: defaultDevAdmin},
		&cli.StringFlag{Name: "registry-listen", Usage: "serve a local OCI registry (in memory) on this address; empty to disable", Value: ""},
		&cli.BoolFlag{Name: "insecure", Usage: "serve the API over plain HTTP without authentication (loopback --api-listen only)"},
		&cli.StringFlag{Name: "encryption-key-file", Usage: "key file sealing TLS secrets in etcd (default DATA-DIR/encryption-keys.yaml, created with one random key if missing)", EnvVars: []string{"KILN_ENCRYPTION_KEY_FILE"}},
	}
	for _, f := range append(controllerFlags, agentFlags...) {
		switch f.Names()[0] {
		case "state-dir":
			// derived from --data-dir unless given
			flags = append(flags, &cli.StringFlag{Name: "state-dir", Usage: "agent state (default DATA-DIR/agent)"})
		case "node-api-listen":
			flags = append(flags, &cli.StringFlag{Name: "node-api-listen", Usage: "agent node API (pod logs) address", Value: "127.0.0.1:10250"})
		case "volume-root":
			flags = append(flags, &cli.StringFlag{Name: "volume-root", Usage: "persistent volume claims, DIR/NAMESPACE/CLAIM (default DATA-DIR/volumes)"})
		default:
			flags = append(flags, f)
		}
	}
	return flags
}

var devCommand = &cli.Command{
	Name:  "dev",
	Usage: "run every role in one process on an embedded etcd (single machine)",
	Description: `Starts an embedded etcd, the API server, controller, scheduler, autoscaler,
activator, xds server, gateway and node agent in one process. The API is
served over HTTPS with a certificate of the dev CA (DATA-DIR/pki/ca.crt), and
the cluster-admin bearer token is written to DATA-DIR/token; 'kiln' finds
both there by default. Secrets are encrypted in etcd with
DATA-DIR/encryption-keys.yaml, created on first start.

Every hop between roles runs mutual TLS, and the embedded etcd serves TLS with
client certificates: a CA is created in DATA-DIR/pki on first start and every
role's certificate (ROLE.crt, ROLE.key) is issued from it at each start. The
gateway's public listeners stay plain HTTP (and HTTPS for mapped domains).`,
	Flags:  devFlags(),
	Action: runDev,
}

func runDev(c *cli.Context) error {
	log, err := logger(c)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext(c.Context)
	defer cancel()
	dataDir := c.String("data-dir")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	// One CA for the API's certificate, every role's and etcd's.
	devCA, err := openDevPKI(dataDir)
	if err != nil {
		return err
	}
	apiOpts, tokenPath := apiserverOptionsDev(c, dataDir)
	var apiTLS *tls.Config
	apiURL := "http://" + c.String("api-listen")
	if tokenPath != "" {
		tok, err := ensureToken(tokenPath)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		apiOpts.Token = tok
		if apiTLS, err = devCA.apiTLS(); err != nil {
			return err
		}
		apiURL = "https://" + c.String("api-listen")
	} else if err := checkInsecure(c.String("api-listen"), "--api-listen"); err != nil {
		return err
	}
	keyFile := c.String("encryption-key-file")
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, "encryption-keys.yaml")
		if err := ensureKeyFile(keyFile); err != nil {
			return fmt.Errorf("encryption key file: %w", err)
		}
	}
	// apiserver and xds share one process here, so one load serves both.
	if apiOpts.SecretKeys, err = secretKeys(keyFile, log); err != nil {
		return err
	}

	start := time.Now()
	agentCfg, err := agentConfig(c)
	if err != nil {
		return err
	}
	certs, err := devCA.roleCerts(agentCfg.NodeName)
	if err != nil {
		return err
	}
	etcdTLS, err := devCA.etcdTLS(c.String("etcd-listen"))
	if err != nil {
		return err
	}
	etcd, err := embedetcd.StartTLS(filepath.Join(dataDir, "etcd"), c.String("etcd-listen"), etcdTLS.server)
	if err != nil {
		return err
	}
	defer etcd.Close()
	st, err := etcdstore.DialTLS([]string{etcd.Endpoint}, 5*time.Second, etcdTLS.client)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("embedded etcd ready", "endpoint", etcd.Endpoint)

	if addr := c.String("registry-listen"); addr != "" {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--registry-listen %s: %w", addr, err)
		}
		srv := imagebuild.ServeRegistry(lis)
		defer srv.Close()
		log.Info("local OCI registry serving", "address", lis.Addr().String())
	}

	if agentCfg.StateDir == "" {
		agentCfg.StateDir = filepath.Join(dataDir, "agent")
	}
	if agentCfg.VolumeRoot == "" {
		agentCfg.VolumeRoot = filepath.Join(dataDir, "volumes")
	}
	// The API describes this process's gateway as knative-serving/kiln-gateway
	// and reads pod logs from the agent as the apiserver role.
	gwEndpoint := fmt.Sprintf("http=%s", net.JoinHostPort(c.String("gateway-listen-host"), fmt.Sprint(c.Uint("http-port"))))
	if c.Uint("https-port") != 0 {
		gwEndpoint += fmt.Sprintf(",https=%s", net.JoinHostPort(c.String("gateway-listen-host"), fmt.Sprint(c.Uint("https-port"))))
	}
	if err := apiserverViews(&apiOpts, gwEndpoint, certs[pki.RoleAPIServer]); err != nil {
		return err
	}
	xdsOpts := xdsOptions(c)
	xdsOpts.ActivatorAddress = c.String("activator-listen")
	xdsOpts.SecretKeys = apiOpts.SecretKeys
	agentCfg.SecretKeys = apiOpts.SecretKeys
	gwCfg := gatewayConfigDev(c)

	// One group owns every role: the first role to fail stops the rest,
	// and runDev returns only once all of them have.
	roles, ctx := errgroup.WithContext(ctx)
	var readyWG sync.WaitGroup
	run := func(name string, fn roleFunc) {
		readyWG.Add(1)
		var once sync.Once
		roles.Go(func() error {
			l := log.With("role", name)
			err := fn(ctx, st, l, func() { once.Do(readyWG.Done) })
			once.Do(readyWG.Done)
			if err != nil && ctx.Err() == nil {
				l.Error("role failed; stopping", "error", err)
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	run("apiserver", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runAPIServer(ctx, st, c.String("api-listen"), apiOpts, apiTLS, l, ready)
	})
	run("controller", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runController(ctx, st, l, ready)
	})
	run("scheduler", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		ready()
		return lead(ctx, st, "scheduler", l, scheduler.New(st, scheduler.Options{}, l).Lead)
	})
	run("autoscaler", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runAutoscaler(ctx, st, c.String("autoscaler-listen"), "", autoscaler.Options{}, certs[pki.RoleAutoscaler], l, ready)
	})
	run("activator", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runActivator(ctx, st, c.String("activator-listen"), "", devActivatorStop, certs[pki.RoleActivator], l, ready)
	})
	run("xds", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runXDS(ctx, st, c.String("xds-listen"), xdsOpts, certs[pki.RoleXDS], l, ready)
	})
	run("gateway", func(ctx context.Context, _ *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runGateway(ctx, gwCfg, certs[pki.RoleGateway], l, ready)
	})
	run("agent", func(ctx context.Context, st *etcdstore.Store, l *slog.Logger, ready func()) error {
		return runAgent(ctx, st, agentCfg, c.String("node-api-listen"), certs[pki.RoleAgent], l, ready)
	})

	// Every role marks itself ready when it serves or when it exits, so
	// this wait always ends.
	allReady := make(chan struct{})
	go func() { readyWG.Wait(); close(allReady) }()
	<-allReady
	if ctx.Err() == nil {
		log.Info("kiln dev ready", "api", apiURL, "token_file", tokenPath,
			"gateway", fmt.Sprintf("http://%s:%d", gwCfg.ListenHost, c.Uint("http-port")), "startup", time.Since(start).Round(time.Millisecond))
		writeReadyFile(dataDir)
		sdnotify.Ready()
		<-ctx.Done()
		sdnotify.Stopping()
		os.Remove(filepath.Join(dataDir, "ready"))
	}
	return roles.Wait()
}

// roleCerts issues, from the dev CA, the certificate of every role that
// listens for or calls another role, so a dev cluster runs every hop
// between roles with mutual TLS like a real one. The agent's names its
// node: the autoscaler takes its metrics only for that node.
func (p *devPKI) roleCerts(node string) (map[string]pki.Files, error) {
	ids := []pki.Identity{{Role: pki.RoleAPIServer}, {Role: pki.RoleAutoscaler}, {Role: pki.RoleActivator}, {Role: pki.RoleXDS}, {Role: pki.RoleGateway}, {Role: pki.RoleAgent, Name: node}}
	out := map[string]pki.Files{}
	for _, id := range ids {
		base := id.Role
		if id.Role == pki.RoleAPIServer {
			// apiserver.crt is the API's serving certificate (apiTLS);
			// this one is its client certificate to the agents.
			base = "apiserver-client"
		}
		f, err := p.Issue(base, id)
		if err != nil {
			return nil, err
		}
		out[id.Role] = f
	}
	return out, nil
}

// devEtcd is the embedded etcd's TLS: the server's files, and the client
// config of the dev process, its only client.
type devEtcd struct {
	server embedetcd.ClientTLS
	client *tls.Config
}

// etcdTLS issues the embedded etcd's server certificate (for its listen
// host too) and a client certificate from the dev CA: etcd then admits only
// certificates of that CA, as a production etcd should
// (--etcd-cacert/--etcd-cert/--etcd-key on every role).
func (p *devPKI) etcdTLS(listen string) (devEtcd, error) {
	var hosts []string
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	srv, err := p.Issue("etcd-server", pki.Identity{Role: pki.RoleEtcd}, hosts...)
	if err != nil {
		return devEtcd{}, err
	}
	cl, err := p.Issue("etcd-client", pki.Identity{Role: pki.RoleEtcd, Name: "client"})
	if err != nil {
		return devEtcd{}, err
	}
	cfg, err := pki.ClientConfig(cl)
	if err != nil {
		return devEtcd{}, err
	}
	return devEtcd{server: embedetcd.ClientTLS{CAFile: srv.CA, CertFile: srv.Cert, KeyFile: srv.Key}, client: cfg}, nil
}

func writeReadyFile(dataDir string) {
	os.WriteFile(filepath.Join(dataDir, "ready"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

func apiserverOptionsDev(c *cli.Context, dataDir string) (opts apiOptions, tokenPath string) {
	if c.Bool("insecure") {
		return apiOptions{Insecure: true}, ""
	}
	return apiOptions{}, filepath.Join(dataDir, "token")
}

// apiTLS serves the dev API with a certificate of the dev CA, which
// also vouches for client certificates; `kiln` trusts DATA-DIR/pki/ca.crt
// by default, so HTTPS needs no setup.
func (p *devPKI) apiTLS() (*tls.Config, error) {
	f, err := p.Issue("apiserver", pki.Identity{Role: pki.RoleAPIServer})
	if err != nil {
		return nil, err
	}
	return apiserverTLS(f.Cert, f.Key, p.CAFile())
}

func gatewayConfigDev(c *cli.Context) gatewayCfg {
	id, _ := os.Hostname()
	return gatewayCfg{XDSAddresses: []string{c.String("xds-listen")}, NodeID: id + "-dev", ListenHost: c.String("gateway-listen-host"), PortOverride: int(c.Uint("http-port")),
		AdminListen: devAdminListen(c)}
}

// defaultDevAdmin is Envoy's admin port.
const defaultDevAdmin = "127.0.0.1:9901"

// devAdminListen is --admin-listen, except that the default is dropped
// (with a note) when something already holds it: a second dev cluster on
// one machine should still start. An address given explicitly must bind.
func devAdminListen(c *cli.Context) string {
	addr := c.String("admin-listen")
	if c.IsSet("admin-listen") || addr == "" {
		return addr
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Warn("gateway admin listener off: default port busy; choose one with --admin-listen", "address", addr, "error", err)
		return ""
	}
	lis.Close()
	return addr
}

// devActivatorStop: the one activator of kilnd dev has no peer to hand
// off to, so it stops accepting at once and gives requests in flight the
// usual grace.
var devActivatorStop = activatorStop{drainDelay: 0, timeout: shutdownGrace}
