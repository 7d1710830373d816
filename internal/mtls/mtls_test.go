package mtls_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
)

// testPKI issues certificates of one CA, and of a foreign one, into a
// temp dir.
type testPKI struct {
	t       *testing.T
	dir     string
	ca      *pki.CA
	foreign *pki.CA
}

func newPKI(t *testing.T) *testPKI {
	ca, _, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := pki.NewCA("foreign CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca, foreign: foreign}
}

func (p *testPKI) files(role, name string) pki.Files {
	f, err := p.ca.IssueFiles(p.dir, role+"-"+name, pki.Identity{Role: role, Name: name}, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	return f
}

// foreignFiles is a certificate of another CA, trusting ours.
func (p *testPKI) foreignFiles(role string) pki.Files {
	dir := p.t.TempDir()
	f, err := p.foreign.IssueFiles(dir, role, pki.Identity{Role: role}, nil, time.Hour, time.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	f.CA = filepath.Join(p.dir, "ca.crt")
	return f
}

func TestCheckFiles(t *testing.T) {
	for _, tc := range []struct {
		f    pki.Files
		want string
	}{
		{f: pki.Files{}},
		{f: pki.Files{CA: "a", Cert: "b", Key: "c"}},
		{f: pki.Files{Cert: "b", Key: "c"}, want: "--tls-ca-file is required"},
		{f: pki.Files{CA: "a", Key: "c"}, want: "--tls-cert-file is required"},
		{f: pki.Files{CA: "a", Cert: "b"}, want: "--tls-key-file is required"},
	} {
		err := mtls.CheckFiles(tc.f)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckFiles(%+v) = %v, want %q", tc.f, err, tc.want)
		}
	}
}

// A gRPC listener admits only the roles its check allows, and hands the
// caller's identity to the handler.
func TestGRPCRoleCheck(t *testing.T) {
	p := newPKI(t)
	server := p.files(pki.RoleAutoscaler, "")
	opts, err := mtls.GRPCServerOptions(server, pki.Allow(pki.RoleAgent))
	if err != nil {
		t.Fatal(err)
	}
	var seen pki.Identity
	opts = append(opts, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		seen, _ = mtls.IdentityFrom(ctx)
		return h(ctx, req)
	}))
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()

	for _, tc := range []struct {
		name  string
		files pki.Files
		want  codes.Code
	}{
		{"agent", p.files(pki.RoleAgent, "n1"), codes.OK},
		{"gateway", p.files(pki.RoleGateway, ""), codes.PermissionDenied},
		{"foreign CA", p.foreignFiles(pki.RoleAgent), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dial, err := mtls.GRPCDialOption(tc.files, pki.RoleAutoscaler)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), dial)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != tc.want {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if tc.want == codes.OK && seen != (pki.Identity{Role: pki.RoleAgent, Name: "n1"}) {
				t.Fatalf("handler saw %v", seen)
			}
		})
	}

	t.Run("no client certificate", func(t *testing.T) {
		cfg, err := mtls.ClientTLS(p.files(pki.RoleAgent, "n2"), pki.RoleAutoscaler)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = nil
		conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("Check = %v, want the handshake refused", err)
		}
	})

	t.Run("client checks the server's role", func(t *testing.T) {
		dial, err := mtls.GRPCDialOption(p.files(pki.RoleAgent, "n1"), pki.RoleXDS)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), dial)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not one of [xds]") {
			t.Fatalf("Check = %v, want the client to refuse an autoscaler posing as xds", err)
		}
	})
}

// The HTTP middleware: 403 for a verified caller of the wrong role, the
// handshake refused without a certificate of the CA.
func TestHandlerRoleCheck(t *testing.T) {
	p := newPKI(t)
	cfg, err := mtls.ServerTLS(p.files(pki.RoleActivator, ""))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mtls.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.IdentityFrom(r.Context())
		w.Write([]byte(id.String()))
	}), pki.Allow(pki.RoleGateway)))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()

	get := func(f pki.Files, strip bool) (int, error) {
		c, err := mtls.ClientTLS(f, pki.RoleActivator)
		if err != nil {
			t.Fatal(err)
		}
		if strip {
			c.Certificates = nil
		}
		tr := &http.Transport{TLSClientConfig: c}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(p.files(pki.RoleGateway, "edge-1"), false); err != nil || code != 200 {
		t.Errorf("gateway: %d %v", code, err)
	}
	if code, err := get(p.files(pki.RoleAgent, "n1"), false); err != nil || code != http.StatusForbidden {
		t.Errorf("agent: %d %v, want 403", code, err)
	}
	if _, err := get(p.files(pki.RoleGateway, "edge-2"), true); err == nil {
		t.Error("no certificate: admitted")
	}
	if _, err := get(p.foreignFiles(pki.RoleGateway), false); err == nil {
		t.Error("foreign CA: admitted")
	}
	// Plain HTTP to a TLS listener never reaches the handler.
	resp, err := http.Get(strings.Replace(srv.URL, "https:", "http:", 1))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %d", resp.StatusCode)
		}
	}
}
