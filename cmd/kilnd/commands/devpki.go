package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-serving/kiln/internal/pki"
)

// devPKI is the certificate authority `kilnd dev` keeps in DATA-DIR/pki:
// ca.crt and ca.key, created on first start, and one certificate per role
// (ROLE.crt, ROLE.key) issued from it, for 127.0.0.1 and localhost. The
// demo stays one command: nothing needs to be created by hand.
type devPKI struct {
	dir string
	ca  *pki.CA
}

// devCAValidity is long: a dev cluster's CA should not expire under it.
const devCAValidity = 10 * 365 * 24 * time.Hour

// openDevPKI loads DATA-DIR/pki's CA, creating it when absent.
func openDevPKI(dataDir string) (*devPKI, error) {
	dir := filepath.Join(dataDir, "pki")
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(certFile); err == nil {
		ca, err := pki.LoadCA(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("dev CA: %w", err)
		}
		return &devPKI{dir: dir, ca: ca}, nil
	}
	ca, keyPEM, err := pki.NewCA("kiln dev CA", devCAValidity, time.Now())
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	if err := pki.WriteFile(keyFile, keyPEM, true); err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	if err := pki.WriteFile(certFile, ca.CertPEM, false); err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	return &devPKI{dir: dir, ca: ca}, nil
}

// CAFile is the path of the dev CA's certificate, what clients trust.
func (p *devPKI) CAFile() string { return filepath.Join(p.dir, "ca.crt") }

// Issue writes a fresh certificate for id (valid a year, for 127.0.0.1,
// localhost and hosts) as DATA-DIR/pki/BASE.crt and .key and returns the
// files.
func (p *devPKI) Issue(base string, id pki.Identity, hosts ...string) (pki.Files, error) {
	f, err := p.ca.IssueFiles(p.dir, base, id, append([]string{"127.0.0.1", "::1", "localhost"}, hosts...), 365*24*time.Hour, time.Now())
	if err != nil {
		return pki.Files{}, fmt.Errorf("dev certificate for %s: %w", id, err)
	}
	return f, nil
}
