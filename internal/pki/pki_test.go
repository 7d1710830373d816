package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestIdentityRoundTrip(t *testing.T) {
	now := time.Now()
	ca, _, err := NewCA("kiln test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id      Identity
		wantErr string
	}{
		{id: Identity{Role: RoleAgent, Name: "node-1"}},
		{id: Identity{Role: RoleXDS}},
		{id: Identity{Role: RoleUser, Name: "alice"}},
		{id: Identity{Role: "root"}, wantErr: `role "root"`},
		{id: Identity{Role: RoleAgent, Name: "a/b"}, wantErr: `name "a/b"`},
	} {
		t.Run(tc.id.String(), func(t *testing.T) {
			certPEM, _, err := ca.Issue(tc.id, []string{"127.0.0.1", "localhost"}, time.Hour, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := IdentityOf(cert); err != nil || got != tc.id {
				t.Fatalf("IdentityOf = %v, %v; want %v", got, err, tc.id)
			}
			if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Fatalf("not signed by the CA: %v", err)
			}
		})
	}
}

// A listener with ServerConfig admits a client certificate of the CA,
// reports its identity, and refuses a client without one or from another CA.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey, err := NewCA("kiln test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dir+"/ca.key", caKey, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dir+"/ca.crt", ca.CertPEM, false); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(dir+"/ca.crt", dir+"/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	srvFiles, err := loaded.IssueFiles(dir, "xds", Identity{Role: RoleXDS}, []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	gwFiles, err := loaded.IssueFiles(dir, "gateway", Identity{Role: RoleGateway, Name: "edge-1"}, nil, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := NewCA("another CA", time.Hour, now)
	otherFiles, err := other.IssueFiles(t.TempDir(), "gateway", Identity{Role: RoleGateway}, nil, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}

	scfg, err := ServerConfig(srvFiles)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	ids := make(chan string, 4)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				ids <- "handshake failed"
				c.Close()
				continue
			}
			st := tc.ConnectionState()
			id, err := PeerIdentity(&st)
			if err != nil {
				ids <- err.Error()
			} else {
				ids <- id.String()
			}
			if err := Allow(RoleGateway)(id); err != nil {
				ids <- "refused: " + err.Error()
			}
			c.Close()
		}
	}()
	dial := func(f Files) error {
		cfg, err := ClientConfig(f)
		if err != nil {
			return err
		}
		cfg.ServerName = "127.0.0.1"
		c, err := tls.Dial("tcp", lis.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) {
			return nil
		}
		return err
	}
	if err := dial(gwFiles); err != nil {
		t.Fatalf("gateway dial: %v", err)
	}
	if got := <-ids; got != "gateway/edge-1" {
		t.Fatalf("peer identity %q, want gateway/edge-1", got)
	}
	_ = dial(otherFiles) // refused during the handshake, on either side
	if got := <-ids; got != "handshake failed" {
		t.Fatalf("a certificate of another CA: %q, want a failed handshake", got)
	}
	if err := dial(srvFiles); err != nil {
		t.Fatalf("xds dial: %v", err)
	}
	if got := <-ids; got != "xds" {
		t.Fatalf("peer identity %q, want xds", got)
	}
	if got := <-ids; !strings.HasPrefix(got, "refused: xds may not call this") {
		t.Fatalf("role check: %q", got)
	}
	if _, err := ServerConfig(Files{CA: srvFiles.CA}); err == nil || !strings.Contains(err.Error(), "needs a CA, a certificate and a key") {
		t.Fatalf("incomplete files: %v", err)
	}
}
