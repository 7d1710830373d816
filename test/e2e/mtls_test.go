package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// caller is one way of knocking on a listener between roles.
type caller struct {
	name string
	// files is the client certificate; zero for none.
	files pki.Files
	// plain sends no TLS at all.
	plain bool
}

// TestMutualTLSRefusals: with every role given its certificate, each
// listener between roles refuses a client without a certificate, one from
// another CA and one of a role that may not call it, and admits the roles
// that may. The rest of the suite runs with mutual TLS on, so it also shows
// the allowed hops work.
func TestMutualTLSRefusals(t *testing.T) {
	c := startCluster(t)
	c.mustRun("service", "create", "tls", "--image", c.image, "--env", "RESPONSE=over mutual TLS")
	c.eventuallyBody("tls.default.example.com", "over mutual TLS", 30*time.Second)

	foreign, _, err := pki.NewCA("not the kiln CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignFiles, err := foreign.IssueFiles(t.TempDir(), "gateway", pki.Identity{Role: pki.RoleGateway}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Trust the kiln CA, present the foreign certificate.
	foreignFiles.CA = c.certs[pki.RoleGateway].CA
	anonymous := pki.Files{CA: c.certs[pki.RoleGateway].CA}
	unauthenticated := []caller{
		{name: "plain", plain: true},
		{name: "no certificate", files: anonymous},
		{name: "foreign CA", files: foreignFiles},
	}
	role := func(r string) caller { return caller{name: r, files: c.certs[r]} }
	controller := caller{name: "controller", files: c.issue("controller", pki.Identity{Role: pki.RoleController})}

	t.Run("xds", func(t *testing.T) {
		for _, cl := range append(unauthenticated, role(pki.RoleAgent), role(pki.RoleActivator), controller) {
			t.Run(cl.name, func(t *testing.T) {
				if got, err := sdsSecrets(t, c, cl); err == nil {
					t.Fatalf("SDS answered %s: %d resources", cl.name, got)
				}
			})
		}
		t.Run("gateway", func(t *testing.T) {
			if _, err := sdsSecrets(t, c, role(pki.RoleGateway)); err != nil {
				t.Fatalf("SDS refused the gateway: %v", err)
			}
		})
	})

	t.Run("autoscaler", func(t *testing.T) {
		for _, addr := range c.autoscalers {
			for _, cl := range append(unauthenticated, role(pki.RoleGateway), role(pki.RoleXDS), controller) {
				t.Run(cl.name, func(t *testing.T) {
					conn := grpcConn(t, addr, cl, pki.RoleAutoscaler)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_, err := pb.NewAutoscalerClient(conn).Poke(ctx, &pb.PokeRequest{Namespace: "default", Revision: "tls-00001"})
					if code := status.Code(err); code != codes.Unavailable && code != codes.PermissionDenied && code != codes.Unauthenticated {
						t.Fatalf("Poke from %s: %v, want refused", cl.name, err)
					}
					if err := sendBatch(conn, "agent/node-1"); err == nil {
						t.Fatalf("metrics from %s accepted", cl.name)
					}
				})
			}
			t.Run("activator pokes", func(t *testing.T) {
				conn := grpcConn(t, addr, role(pki.RoleActivator), pki.RoleAutoscaler)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := pb.NewAutoscalerClient(conn).Poke(ctx, &pb.PokeRequest{Namespace: "default", Revision: "tls-00001"})
				// The standby answers FAILED_PRECONDITION: admitted, not leading.
				if code := status.Code(err); code != codes.OK && code != codes.FailedPrecondition {
					t.Fatalf("Poke from the activator: %v", err)
				}
			})
			t.Run("agent of another node", func(t *testing.T) {
				other := caller{name: "node-2", files: c.issue("agent-node-2", pki.Identity{Role: pki.RoleAgent, Name: "node-2"})}
				err := sendBatch(grpcConn(t, addr, other, pki.RoleAutoscaler), "agent/node-1")
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("node-2 reporting as node-1: %v, want PermissionDenied", err)
				}
				if err := sendBatch(grpcConn(t, addr, other, pki.RoleAutoscaler), "agent/node-2"); status.Code(err) == codes.PermissionDenied {
					t.Fatalf("node-2 reporting as itself: %v", err)
				}
			})
		}
	})

	st := c.etcdStore()
	ins, err := instancesOf(st, "default", "tls-00001")
	if err != nil || len(ins) == 0 || ins[0].Endpoint == "" {
		t.Fatalf("no instance of tls-00001: %v %v", ins, err)
	}
	dataPath := []struct {
		name, addr string
		allowed    []string
		refused    []caller
	}{
		{"activator", c.activator, []string{pki.RoleGateway}, []caller{role(pki.RoleAgent), role(pki.RoleActivator), controller}},
		{"queue-proxy", ins[0].Endpoint, []string{pki.RoleGateway, pki.RoleActivator}, []caller{role(pki.RoleAgent), role(pki.RoleXDS), controller}},
	}
	for _, dp := range dataPath {
		t.Run(dp.name, func(t *testing.T) {
			for _, cl := range append(unauthenticated, dp.refused...) {
				t.Run(cl.name, func(t *testing.T) {
					code, err := httpsGet(t, dp.addr, cl)
					if err == nil && code != http.StatusBadRequest && code != http.StatusUnauthorized && code != http.StatusForbidden {
						t.Fatalf("%s answered %s with %d", dp.name, cl.name, code)
					}
				})
			}
			for _, r := range dp.allowed {
				t.Run(r, func(t *testing.T) {
					code, err := httpsGet(t, dp.addr, role(r))
					if err != nil || code == http.StatusUnauthorized || code == http.StatusForbidden {
						t.Fatalf("%s refused %s: %d %v", dp.name, r, code, err)
					}
				})
			}
		})
	}
}

// grpcConn dials addr as cl, checking the server is serverRole.
func grpcConn(t *testing.T, addr string, cl caller, serverRole string) *grpc.ClientConn {
	t.Helper()
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if !cl.plain {
		cfg := clientTLS(t, cl.files, serverRole)
		creds = grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clientTLS is a client config trusting the kiln CA and checking the
// server's role, presenting f's certificate when it has one.
func clientTLS(t *testing.T, f pki.Files, serverRoles ...string) *tls.Config {
	t.Helper()
	if f.Cert != "" {
		cfg, err := mtls.ClientTLS(f, serverRoles...)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// No certificate of its own: borrow the checks, drop the certificate.
	tmp, _, err := pki.NewCA("scratch", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g, err := tmp.IssueFiles(t.TempDir(), "x", pki.Identity{Role: pki.RoleUser, Name: "x"}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g.CA = f.CA
	cfg, err := mtls.ClientTLS(g, serverRoles...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = nil
	return cfg
}

// sdsSecrets opens an ADS stream as cl and asks for every TLS secret; it
// returns how many the first response carried, or the stream's error.
func sdsSecrets(t *testing.T, c *cluster, cl caller) (int, error) {
	conn := grpcConn(t, c.xds, cl, pki.RoleXDS)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, Node: &corev3.Node{Id: "e2e-probe", Cluster: "kiln-gateway"}}); err != nil {
		_, err = s.Recv()
		return 0, err
	}
	if err := s.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.SecretType, Node: &corev3.Node{Id: "e2e-probe", Cluster: "kiln-gateway"}}); err != nil {
		_, err = s.Recv()
		return 0, err
	}
	resp, err := s.Recv()
	if err != nil {
		return 0, err
	}
	return len(resp.GetResources()), nil
}

// sendBatch streams one metric batch as source and returns the stream's
// final status.
func sendBatch(conn *grpc.ClientConn, source string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := pb.NewAutoscalerClient(conn).StreamMetrics(ctx)
	if err != nil {
		return err
	}
	stat := &pb.Stat{Namespace: "default", Revision: "tls-00001", PodName: "probe"}
	if err := s.Send(&pb.MetricBatch{Source: source, Stats: []*pb.Stat{stat}}); err != nil && err != io.EOF {
		return err
	}
	_, err = s.CloseAndRecv()
	return err
}

// httpsGet sends GET / to addr as cl (plain HTTP when cl.plain) and
// returns the status code.
func httpsGet(t *testing.T, addr string, cl caller) (int, error) {
	tr := &http.Transport{}
	url := "http://" + addr + "/"
	if !cl.plain {
		tr.TLSClientConfig = clientTLS(t, cl.files, pki.RoleAgent, pki.RoleActivator)
		url = "https://" + addr + "/"
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "tls.default.example.com"
	req.Header.Set("Knative-Serving-Namespace", "default")
	req.Header.Set("Knative-Serving-Revision", "tls-00001")
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		t.Logf("%s as %s: %d %s", addr, cl.name, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, nil
}
