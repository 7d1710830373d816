package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// restart stops role process name and starts it again with its arguments
// (re-reading files such as the encryption key file).
func (c *cluster) restart(name string) {
	c.t.Helper()
	c.mu.Lock()
	args := c.procs[name].Args // kilnd --etcd-endpoints E ROLE ARGS...
	c.mu.Unlock()
	c.stop(name)
	c.start(name, args[3], args[4:]...)
}

// testSecretAtRest checks that secret ns/default/name, created through the
// API, sits in etcd sealed under the cluster's key, then rotates the key the
// documented way (add first, restart, re-encrypt, remove the old key,
// restart) and checks a fresh edge is served host's certificate over SDS.
func testSecretAtRest(t *testing.T, c *cluster, name, host string, pool *x509.CertPool, certFile, keyFile string) {
	st := c.etcdStore()
	rawValue := func() []byte {
		t.Helper()
		kv, err := st.Get(context.Background(), store.SecretKey("default", name))
		if err != nil {
			t.Fatal(err)
		}
		return kv.Value
	}
	v := rawValue()
	if got := encryption.KeyName(v); got != "e2e-1" {
		t.Fatalf("secret stored under key %q, want e2e-1: %.40q", got, v)
	}
	kf, err := encryption.ReadFile(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secretKey, _ := base64.StdEncoding.DecodeString(kf.Keys[0].Secret)
	for _, f := range []string{certFile, keyFile} {
		pem, _ := os.ReadFile(f)
		if bytes.Contains(v, pem) || bytes.Contains(v, []byte(base64.StdEncoding.EncodeToString(pem))) {
			t.Fatalf("etcd holds %s in the clear", filepath.Base(f))
		}
	}
	if bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("tls.key")) || bytes.Contains(v, secretKey) || bytes.Contains(v, []byte(kf.Keys[0].Secret)) {
		t.Fatal("etcd value is not ciphertext, or holds the key")
	}

	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(c.kilnd, append([]string{"--etcd-endpoints", c.etcd, "admin"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kilnd admin %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	admin("encryption-key", "add", "--name", "e2e-2", c.keyFile)
	c.restart("apiserver")
	c.restart("xds")
	if out := admin("reencrypt-secrets", "--encryption-key-file", c.keyFile); !strings.Contains(out, `rewrote 1 secrets with key "e2e-2"`) {
		t.Fatalf("reencrypt-secrets:\n%s", out)
	}
	if got := encryption.KeyName(rawValue()); got != "e2e-2" {
		t.Fatalf("after re-encryption the secret is under %q, want e2e-2", got)
	}
	admin("encryption-key", "remove", c.keyFile, "e2e-1")
	c.restart("apiserver")
	c.restart("xds")
	// A fresh edge holds only what the restarted xds (old key gone) sends.
	c.restart("gateway")
	c.waitHTTPWith(c.apiClient, c.api+"/healthz", 30*time.Second)

	if out := c.mustRun("secret", "describe", name, "-o", "yaml"); !strings.Contains(out, "tls.crt") || strings.Contains(out, "tls.key") {
		t.Fatalf("secret describe with only the new key:\n%s", out)
	}
	r := c.eventuallyEdge("https after rotation", c.gatewayHTTPS, host, pool, func(r edgeReply) bool { return r.code == 200 })
	if r.body != "Hello Routing!" {
		t.Fatalf("body %q", r.body)
	}
	if log, _ := os.ReadFile(filepath.Join(c.dir, "xds.log")); bytes.Contains(log, []byte("dropping undecodable value")) {
		t.Fatalf("xds could not open a secret after rotation:\n%s", log)
	}
}
