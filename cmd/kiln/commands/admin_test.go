package commands_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kcli "github.com/kiln-serving/kiln/cmd/kiln/commands"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/services/apiserver"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// httpsAPI starts an apiserver over HTTPS with a certificate of a new test
// CA (client certificates of the CA accepted) and returns it, the CA, the
// server's files and a runner of the kiln CLI pointed at it.
func httpsAPI(t *testing.T, dir string) (*httptest.Server, *pki.CA, pki.Files, func(args ...string) (string, string, int)) {
	t.Helper()
	now := time.Now()
	ca, _, err := pki.NewCA("test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	srvFiles, err := ca.IssueFiles(dir, "apiserver", pki.Identity{Role: pki.RoleAPIServer}, []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(srvFiles.Cert, srvFiles.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := httptest.NewUnstartedServer(apiserver.New(registry.New(memstore.New()), apiserver.Options{Token: token}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	run := func(args ...string) (string, string, int) {
		var out, errw bytes.Buffer
		full := append([]string{"kiln", "--server", srv.URL, "--certificate-authority", srvFiles.CA}, args...)
		code := kcli.Run(context.Background(), full, nil, &out, &errw)
		return out.String(), errw.String(), code
	}
	return srv, ca, srvFiles, run
}

// TestAdminTokensOverHTTPS issues a namespace-scoped token with `kiln admin
// token create` against an HTTPS apiserver trusted through
// --certificate-authority, uses it in its namespace and elsewhere, and
// revokes it; then authenticates with a client certificate instead.
func TestAdminTokensOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	srv, ca, _, run := httpsAPI(t, dir)
	userFiles, err := ca.IssueFiles(dir, "alice", pki.Identity{Role: pki.RoleUser, Name: "alice"}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, errw, code := run("--token", token, "--namespace", "dev", "admin", "token", "create", "--role", "edit", "--subject", "alice", "--ttl", "1h")
	if code != 0 || !strings.Contains(errw, `created for subject "alice": role edit in namespace "dev"`) {
		t.Fatalf("create: %d %s %s", code, out, errw)
	}
	alice := strings.TrimSpace(out)
	if len(alice) != 64 {
		t.Fatalf("stdout is not the token alone: %q", out)
	}
	if _, errw, code := run("--token", alice, "--namespace", "dev", "service", "list"); code != 0 {
		t.Fatalf("list in own namespace: %s", errw)
	}
	_, errw, code = run("--token", alice, "--namespace", "prod", "service", "list")
	want := `Error: services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" in the namespace "prod"`
	if code == 0 || !strings.Contains(errw, want) {
		t.Fatalf("list elsewhere: %d %q", code, errw)
	}
	if _, errw, code := run("--token", alice, "admin", "token", "list"); code == 0 || !strings.Contains(errw, "forbidden") {
		t.Fatalf("a namespace editor listed tokens: %q", errw)
	}
	out, errw, code = run("--token", token, "admin", "token", "list")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "edit") || strings.Contains(out, alice) {
		t.Fatalf("token list: %d %s %s", code, out, errw)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]

	// The same subject by certificate instead of token.
	if _, errw, code := run("--client-certificate", userFiles.Cert, "--client-key", userFiles.Key, "--namespace", "dev", "service", "list"); code != 0 {
		t.Fatalf("client certificate: %s", errw)
	}

	if out, errw, code := run("--token", token, "admin", "token", "revoke", id); code != 0 || !strings.Contains(out, "Token "+id+" revoked.") {
		t.Fatalf("revoke: %d %s %s", code, out, errw)
	}
	if _, errw, code := run("--token", alice, "--namespace", "dev", "service", "list"); code == 0 || !strings.Contains(errw, "Unauthorized") && !strings.Contains(errw, "invalid bearer token") {
		t.Fatalf("revoked token still works: %q", errw)
	}

	// Without the CA, the server's certificate is not trusted.
	var o, e bytes.Buffer
	if code := kcli.Run(context.Background(), []string{"kiln", "--server", srv.URL, "--certificate-authority", "", "--token", token, "service", "list"}, nil, &o, &e); code == 0 || !strings.Contains(e.String(), "--certificate-authority") {
		t.Fatalf("an untrusted server certificate: %d %q", code, e.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
}

// TestAdminKubeconfig writes kubeconfigs with `kiln admin kubeconfig` and
// loads them with client-go's own kubeconfig loader: the CLI's credentials,
// then a new namespace-scoped token.
func TestAdminKubeconfig(t *testing.T) {
	dir := t.TempDir()
	_, _, _, run := httpsAPI(t, dir)
	// get lists services in ns with the kubeconfig, as kubectl would.
	get := func(kubeconfig, ns string) (int, string) {
		t.Helper()
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatalf("client-go cannot load %s: %v", kubeconfig, err)
		}
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(cfg.Host + "/apis/serving.knative.dev/v1/namespaces/" + ns + "/services")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	admin := filepath.Join(dir, "admin.kubeconfig")
	if _, errw, code := run("--token", token, "admin", "kubeconfig", "-o", admin); code != 0 || !strings.Contains(errw, "Saved "+admin) {
		t.Fatalf("kubeconfig: %d %s", code, errw)
	}
	if fi, err := os.Stat(admin); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig file: %v %v", fi, err)
	}
	if code, body := get(admin, "prod"); code != 200 {
		t.Fatalf("admin kubeconfig: %d %s", code, body)
	}
	if _, errw, code := run("--token", token, "admin", "kubeconfig", "-o", admin); code == 0 || !strings.Contains(errw, "already exists") {
		t.Fatalf("overwrote without --force: %d %s", code, errw)
	}
	if _, errw, code := run("--token", token, "admin", "kubeconfig", "--subject", "bob"); code == 0 || !strings.Contains(errw, "--subject needs --role") {
		t.Fatalf("--subject without --role: %d %s", code, errw)
	}

	// A new edit token for namespace dev: the context's namespace is dev,
	// and the token works there only.
	out, errw, code := run("--token", token, "-n", "dev", "admin", "kubeconfig", "--role", "edit", "--subject", "carol")
	if code != 0 || !strings.Contains(errw, `created for subject "carol": role edit in namespace "dev"`) {
		t.Fatalf("kubeconfig --role: %d %s", code, errw)
	}
	carol := filepath.Join(dir, "carol.kubeconfig")
	if err := os.WriteFile(carol, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.LoadFromFile(carol)
	if err != nil {
		t.Fatal(err)
	}
	if ctx := raw.Contexts[raw.CurrentContext]; ctx == nil || ctx.Namespace != "dev" {
		t.Fatalf("context: %+v", raw.Contexts)
	}
	if code, body := get(carol, "dev"); code != 200 {
		t.Fatalf("carol in dev: %d %s", code, body)
	}
	if code, body := get(carol, "prod"); code != 403 {
		t.Fatalf("carol in prod: %d %s", code, body)
	}
}
