package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds bin/kiln and bin/kilnd once per test binary.
func binaries(t testing.TB) (kiln, kilnd string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "kiln-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"kiln", "kilnd"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "../../cmd/"+c)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "kiln"), filepath.Join(binDir, "kilnd")
}

// cluster is a kiln installation with every role in its own process.
type cluster struct {
	t           testing.TB
	kiln, kilnd string
	etcd        string
	api         string
	gateway     string
	activator   string // host:port of the first activator
	// activators are host:port of every activator (two, subsetting).
	activators []string
	tokenFile  string
	keyFile    string // secrets encryption key file of apiserver and xds
	// caFile is the CA of the apiserver's HTTPS certificate (and of client
	// certificates it accepts); apiClient trusts it.
	caFile      string
	apiClient   *http.Client
	image       string
	registry    string
	ctrdAddress string
	namespace   string // containerd namespace of the agent
	subnet      string // the agent's instance subnet
	dir         string
	procs       map[string]*exec.Cmd
	// agentArgs are the agent's arguments, to start it again after a fault.
	agentArgs []string
	mu        sync.Mutex

	// gatewayHTTPS and gatewayInternal are host:port of the gateway's
	// HTTPS and internal (cluster-local) listeners.
	gatewayHTTPS, gatewayInternal string
	// gatewayAdmin is host:port of the gateway's admin listener
	// (/ready, /config_dump).
	gatewayAdmin string

	// ca is the test cluster's kiln CA; certs are the files of each
	// role's certificate (key: pki role), given to every role process, so
	// every hop between roles runs mutual TLS as in production.
	ca    *pki.CA
	certs map[string]pki.Files
	// xds is host:port of the xds server; autoscalers of both replicas.
	xds         string
	autoscalers []string
}

// startCluster starts etcd, containerd, a registry with the sample image and
// every kilnd role as a separate process.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	testenv.RequireRoot(t)
	kiln, kilnd := binaries(t)
	c := &cluster{t: t, kiln: kiln, kilnd: kilnd, dir: t.TempDir(), procs: map[string]*exec.Cmd{}, namespace: "kiln-e2e"}
	c.etcd = testenv.EtcdEndpoint(t)
	c.ctrdAddress = testenv.StartContainerd(t)
	c.serveSampleImage()
	c.issueRoleCerts()
	c.tokenFile = filepath.Join(c.dir, "token")
	os.WriteFile(c.tokenFile, []byte(fmt.Sprintf("e2e-%d\n", rand.Int63())), 0o600)
	c.keyFile = filepath.Join(c.dir, "encryption-keys.yaml")
	if out, err := exec.Command(c.kilnd, "admin", "encryption-key", "create", "--name", "e2e-1", c.keyFile).CombinedOutput(); err != nil {
		t.Fatalf("create encryption key file: %v\n%s", err, out)
	}
	apiPort, actPort, xdsPort, gwPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	c.api = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	apiTLS := c.issueAPICertificate()
	c.gateway = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	httpsPort, internalPort := testenv.FreePort(t), testenv.FreePort(t)
	c.gatewayHTTPS, c.gatewayInternal = fmt.Sprintf("127.0.0.1:%d", httpsPort), fmt.Sprintf("127.0.0.1:%d", internalPort)
	c.activator = fmt.Sprintf("127.0.0.1:%d", actPort)
	c.activators = []string{c.activator, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	// The API describes the edge as knative-serving/kiln-gateway and reads
	// pod logs from the agent's node API as the apiserver role.
	nodeClient := c.issue("apiserver-client", pki.Identity{Role: pki.RoleAPIServer})
	c.start("apiserver", "apiserver", "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--token-file", c.tokenFile,
		"--tls-cert-file", apiTLS.Cert, "--tls-key-file", apiTLS.Key, "--client-ca-file", apiTLS.CA, "--encryption-key-file", c.keyFile,
		"--gateway-endpoint", fmt.Sprintf("http=127.0.0.1:%d,https=127.0.0.1:%d", gwPort, httpsPort),
		"--node-ca-file", nodeClient.CA, "--node-cert-file", nodeClient.Cert, "--node-key-file", nodeClient.Key)
	// Two of each singleton: only the leader may act.
	c.autoscalers = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	for _, role := range []string{"controller", "scheduler", "autoscaler"} {
		for i := range 2 {
			var args []string
			if role == "autoscaler" {
				// A port each; the leader publishes its own (election.Observe).
				args = c.tlsArgs(pki.RoleAutoscaler, "--listen", c.autoscalers[i])
			}
			c.start(fmt.Sprintf("%s-%d", role, i+1), role, args...)
		}
	}
	c.start("activator", "activator", c.tlsArgs(pki.RoleActivator, "--listen", c.activators[0])...)
	c.start("activator-2", "activator", c.tlsArgs(pki.RoleActivator, "--listen", c.activators[1])...)
	c.xds = fmt.Sprintf("127.0.0.1:%d", xdsPort)
	c.start("xds", "xds", c.tlsArgs(pki.RoleXDS, "--listen", c.xds, "--http-port", fmt.Sprint(gwPort),
		"--activator-address", fmt.Sprintf("127.0.0.1:%d", actPort), "--https-port", fmt.Sprint(httpsPort), "--internal-port", fmt.Sprint(internalPort),
		"--encryption-key-file", c.keyFile)...)
	c.gatewayAdmin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c.start("gateway", "gateway", c.tlsArgs(pki.RoleGateway, "--xds-address", c.xds, "--listen-host", "127.0.0.1", "--node-id", "e2e-edge",
		"--admin-listen", c.gatewayAdmin)...)
	bridge := fmt.Sprintf("ke%d", rand.Intn(100000))
	// A subnet no route uses: another cluster's bridge on the same subnet
	// (a concurrent test, the demo, one a killed run left behind) would
	// take the instances' traffic.
	subnet := testenv.FreeSubnet(t)
	c.subnet = subnet
	c.agentArgs = c.tlsArgs(pki.RoleAgent, "--node-name", "node-1", "--containerd-address", c.ctrdAddress, "--containerd-namespace", c.namespace,
		"--state-dir", filepath.Join(c.dir, "agent"), "--bridge", bridge, "--subnet", subnet, "--stop-on-exit",
		"--node-api-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--encryption-key-file", c.keyFile)
	// Cleanups run last registered first: the bridge and the rules go
	// once every agent stopped (an agent stopping tears its instances'
	// networks down on the bridge), after the queue-proxy processes a
	// killed agent left, which would otherwise outlive the test.
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run()
		exec.Command("nft", "delete", "table", "inet", "kiln-"+bridge).Run() // if the agent did not stop cleanly
	})
	t.Cleanup(func() { stopQueueProcs(filepath.Join(c.dir, "agent")) })
	c.start("agent", "agent", c.agentArgs...)

	c.waitHTTPWith(c.apiClient, c.api+"/healthz", 30*time.Second)
	return c
}

// serveSampleImage serves a local registry until the test ends and pushes
// the sample app (deploy/samples/hello) to it as c.image.
func (c *cluster) serveSampleImage() {
	c.t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	reg := imagebuild.ServeRegistry(lis)
	c.t.Cleanup(func() { reg.Close() })
	c.registry = lis.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := imagebuild.BuildGoImage(ctx, "../../deploy/samples/hello")
	if err != nil {
		c.t.Fatalf("build sample image: %v", err)
	}
	c.image = c.registry + "/samples/hello:latest"
	if _, err := imagebuild.Push(ctx, img, c.image); err != nil {
		c.t.Fatalf("push sample image: %v", err)
	}
}

// issueAPICertificate issues the apiserver's certificate for 127.0.0.1 from
// the test CA (issueRoleCerts), as an operator would with the kiln CA, and
// sets caFile and apiClient.
func (c *cluster) issueAPICertificate() pki.Files {
	c.t.Helper()
	f := c.issue("apiserver", pki.Identity{Role: pki.RoleAPIServer})
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	c.caFile = f.CA
	c.apiClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return f
}

// issueRoleCerts creates the test CA in DIR/pki (with ca.key: tests issue
// user certificates from it) and one certificate per role that listens for
// or calls another role; the agent's names its node, node-1.
func (c *cluster) issueRoleCerts() {
	c.t.Helper()
	ca, keyPEM, err := pki.NewCA("kiln e2e CA", 24*time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pki.WriteFile(filepath.Join(c.dir, "pki", "ca.key"), keyPEM, true); err != nil {
		c.t.Fatal(err)
	}
	c.ca, c.certs = ca, map[string]pki.Files{}
	for _, id := range []pki.Identity{{Role: pki.RoleAutoscaler}, {Role: pki.RoleActivator}, {Role: pki.RoleXDS}, {Role: pki.RoleGateway}, {Role: pki.RoleAgent, Name: "node-1"}} {
		c.certs[id.Role] = c.issue(id.Role, id)
	}
}

// issue writes a certificate of the test CA for id as DIR/pki/BASE.crt.
func (c *cluster) issue(base string, id pki.Identity) pki.Files {
	c.t.Helper()
	f, err := c.ca.IssueFiles(filepath.Join(c.dir, "pki"), base, id, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// tlsArgs are args with role's --tls-* flags appended.
func (c *cluster) tlsArgs(role string, args ...string) []string {
	f := c.certs[role]
	return append(args, "--tls-ca-file", f.CA, "--tls-cert-file", f.Cert, "--tls-key-file", f.Key)
}

// start runs `kilnd [global flags] ROLE args...` in the background.
func (c *cluster) start(name, role string, args ...string) {
	c.t.Helper()
	full := append([]string{"--etcd-endpoints", c.etcd, role}, args...)
	cmd := exec.Command(c.kilnd, full...)
	logf, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	c.mu.Lock()
	c.procs[name] = cmd
	c.mu.Unlock()
	c.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if c.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			c.t.Logf("---- %s log (tail) ----\n%s", name, b)
		}
	})
}

// stop interrupts one role and waits for it to exit.
func (c *cluster) stop(name string) {
	c.mu.Lock()
	cmd := c.procs[name]
	c.mu.Unlock()
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}

// waitHTTPWith waits until url answers 200 through client.
func (c *cluster) waitHTTPWith(client *http.Client, url string, d time.Duration) {
	c.t.Helper()
	testenv.EventuallyNil(c.t, d, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return fmt.Errorf("%s not answering: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s answers %d", url, resp.StatusCode)
		}
		return nil
	})
}

// run runs the kiln CLI and returns its combined output and exit error.
func (c *cluster) run(args ...string) (string, error) {
	return c.runAs([]string{"--token-file", c.tokenFile}, args...)
}

// runAs runs the kiln CLI with the given credential flags instead of the
// cluster-admin token.
func (c *cluster) runAs(cred []string, args ...string) (string, error) {
	full := append(append([]string{"--server", c.api, "--certificate-authority", c.caFile}, cred...), args...)
	cmd := exec.Command(c.kiln, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mustRun runs the CLI and fails the test on a non-zero exit.
func (c *cluster) mustRun(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// get fetches / from the gateway with the given Host header.
func (c *cluster) get(host string) (int, string, error) { return c.getPath(host, "/") }

// eventuallyBody waits until host answers 200 with want.
func (c *cluster) eventuallyBody(host, want string, d time.Duration) {
	c.t.Helper()
	testenv.EventuallyNil(c.t, d, func() error {
		code, body, err := c.get(host)
		if err == nil && code == 200 && strings.TrimSpace(body) == want {
			return nil
		}
		return fmt.Errorf("%s never answered %q; last: code=%d body=%q err=%v", host, want, code, body, err)
	})
}

// roleClient is an HTTP client presenting role's certificate of the test CA
// (mutual TLS), for calling the data path's listeners between roles
// (activators, queue-proxies) the way an edge does.
func (c *cluster) roleClient(role string) *http.Client {
	c.t.Helper()
	cfg, err := mtls.ClientTLS(c.certs[role], pki.RoleAgent, pki.RoleActivator)
	if err != nil {
		c.t.Fatal(err)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 16}}
}
