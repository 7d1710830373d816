package commands

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"github.com/kiln-serving/kiln/internal/pki"
)

func TestDevPKIIsCreatedOnceAndIssues(t *testing.T) {
	dir := t.TempDir()
	p1, err := openDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := openDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.ca.Cert.Equal(p2.ca.Cert) {
		t.Fatal("a second start made a new CA")
	}
	f, err := p2.Issue("xds", pki.Identity{Role: pki.RoleXDS})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := pki.IdentityOf(cert); err != nil || id.Role != pki.RoleXDS {
		t.Fatalf("identity %v, %v", id, err)
	}
	if st, _ := os.Stat(f.Key); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	if f.CA != p2.CAFile() {
		t.Fatalf("CA file %q, want %q", f.CA, p2.CAFile())
	}
}
