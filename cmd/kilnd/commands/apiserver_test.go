package commands

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/apiserver"
)

func TestCheckInsecure(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7070": true, "[::1]:7070": true, "localhost:7070": true, "127.0.0.2:1": true,
		":7070": false, "0.0.0.0:7070": false, "10.0.0.5:7070": false, "api.example.org:7070": false,
	} {
		err := checkInsecure(addr, "--listen")
		if (err == nil) != ok {
			t.Errorf("%s: err=%v, want allowed=%v", addr, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: unclear error %v", addr, err)
		}
	}
}

func TestAPIServerTLS(t *testing.T) {
	if cfg, err := apiserverTLS("", "", ""); cfg != nil || err != nil {
		t.Fatalf("plain HTTP: %v %v", cfg, err)
	}
	if _, err := apiserverTLS("", "", "ca.crt"); err == nil {
		t.Fatal("a client CA without HTTPS was accepted")
	}
	if _, err := apiserverTLS("x.crt", "", ""); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
	dir := t.TempDir()
	p, err := openDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Issue("apiserver", pki.Identity{Role: pki.RoleAPIServer})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := p.apiTLS()
	if err != nil || len(cfg.Certificates) != 1 || cfg.ClientCAs == nil {
		t.Fatalf("dev TLS: %+v %v", cfg, err)
	}
	if _, err := apiserverTLS(f.Cert, f.Key, f.Cert+".missing"); err == nil {
		t.Fatal("a missing client CA was accepted")
	}
}

// Bearer tokens never cross the network in clear: plain HTTP beyond
// loopback is refused before anything listens.
func TestAPIServerRefusesPlainHTTPBeyondLoopback(t *testing.T) {
	err := runAPIServer(context.Background(), nil, "0.0.0.0:0", apiserver.Options{Token: "t"}, nil, testenv.Quiet(), func() { t.Fatal("ready called") })
	if err == nil || !strings.Contains(err.Error(), "--tls-cert-file") {
		t.Fatalf("err = %v, want a refusal naming --tls-cert-file", err)
	}
}
