package admin_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/cmd/kiln/commands"
	"github.com/kiln-serving/kiln/internal/pki"
)

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := commands.Run(context.Background(), append([]string{"kiln"}, args...), strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), code
}

func TestTLSCreate(t *testing.T) {
	dir := t.TempDir()
	if out, code := run(t, "admin", "tls", "ca", "create", "--dir", dir); code != 0 || !strings.Contains(out, "Saved "+filepath.Join(dir, "ca.crt")) {
		t.Fatalf("ca create: %d %s", code, out)
	}
	if out, code := run(t, "admin", "tls", "ca", "create", "--dir", dir); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("second ca create overwrote: %d %s", code, out)
	}
	if out, code := run(t, "admin", "tls", "cert", "create", "--dir", dir, "--role", "agent"); code == 0 || !strings.Contains(out, "--node is required") {
		t.Fatalf("agent without --node: %d %s", code, out)
	}
	if out, code := run(t, "admin", "tls", "cert", "create", "--dir", dir, "--role", "root"); code == 0 || !strings.Contains(out, `role "root"`) {
		t.Fatalf("unknown role: %d %s", code, out)
	}
	out, code := run(t, "admin", "tls", "cert", "create", "--dir", dir, "--role", "agent", "--node", "node-1", "--host", "10.0.0.5", "--host", "node-1.example")
	if code != 0 {
		t.Fatalf("cert create: %d %s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "agent-node-1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.IdentityOf(cert)
	if err != nil || id != (pki.Identity{Role: pki.RoleAgent, Name: "node-1"}) {
		t.Fatalf("identity %v %v", id, err)
	}
	if len(cert.IPAddresses) != 1 || len(cert.DNSNames) != 1 {
		t.Fatalf("SANs: %v %v", cert.IPAddresses, cert.DNSNames)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "agent-node-1.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	// The files are what a role's --tls-* flags take.
	if _, err := pki.ServerConfig(pki.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "agent-node-1.crt"), Key: filepath.Join(dir, "agent-node-1.key")}); err != nil {
		t.Fatal(err)
	}
}
