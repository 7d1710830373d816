package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// edgeReply is what the edge answered.
type edgeReply struct {
	code     int
	body     string
	location string
	err      error
}

// edgeGet sends GET / with host to the gateway listener at addr, like
// `curl --resolve host:PORT:addr`: over TLS with SNI = host when pool is
// set. Redirects are not followed.
func edgeGet(addr, host string, pool *x509.CertPool) edgeReply {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if pool != nil {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host}
	}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(scheme + "://" + host + "/")
	if err != nil {
		return edgeReply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return edgeReply{code: resp.StatusCode, body: strings.TrimSpace(string(b)), location: resp.Header.Get("Location")}
}

func (c *cluster) eventuallyEdge(what, addr, host string, pool *x509.CertPool, ok func(edgeReply) bool) edgeReply {
	c.t.Helper()
	var last edgeReply
	testenv.EventuallyNil(c.t, 20*time.Second, func() error {
		if last = edgeGet(addr, host, pool); ok(last) {
			return nil
		}
		return fmt.Errorf("%s: last reply %+v", what, last)
	})
	return last
}

// selfSignedFiles writes a self-signed certificate for host and its key
// into dir and returns their paths and a pool trusting the certificate.
func selfSignedFiles(t *testing.T, dir, host string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host, Organization: []string{"Example"}},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// TestRouting covers sections 4.5 and 4.7 of the seed through the real
// processes: a DomainMapping served over HTTPS with a TLS secret (SNI to the
// gateway's HTTPS port), the domain claimed once cluster-wide, per-service
// and global HTTP→HTTPS redirection, and a cluster-local service that only
// the internal listener serves.
func TestRouting(t *testing.T) {
	c := startCluster(t)
	const mapped = "hello.example.org"

	out := c.mustRun("service", "create", "hello", "--image", c.image, "--env", "RESPONSE=Hello Routing!",
		"--annotation", "networking.knative.dev/http-option=redirected")
	if !strings.Contains(out, "http://"+helloHost) {
		t.Fatalf("create output:\n%s", out)
	}

	certFile, keyFile, pool := selfSignedFiles(t, t.TempDir(), mapped)
	if out := c.mustRun("secret", "create", "tls", "hello-cert", "--cert", certFile, "--key", keyFile); !strings.Contains(out, "secret/hello-cert created") {
		t.Fatalf("secret create:\n%s", out)
	}
	if out := c.mustRun("secret", "list"); !strings.Contains(out, "hello-cert") || !strings.Contains(out, "kubernetes.io/tls") {
		t.Fatalf("secret list:\n%s", out)
	}
	if out := c.mustRun("secret", "describe", "hello-cert", "-o", "yaml"); strings.Contains(out, "tls.key") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("the API handed out the private key:\n%s", out)
	}

	out = c.mustRun("domain", "create", mapped, "--ref", "ksvc:hello", "--tls", "hello-cert")
	if !strings.Contains(out, "Domain mapping '"+mapped+"' created in namespace 'default'.") {
		t.Fatalf("domain create:\n%s", out)
	}
	c.waitFor("mapping ready", 30*time.Second, func() bool {
		out, _ := c.run("domain", "list")
		return strings.Contains(out, "https://"+mapped) && strings.Contains(out, "True")
	})
	if out := c.mustRun("domain", "describe", mapped); !strings.Contains(out, "Service:") || !strings.Contains(out, "DomainClaimed") {
		t.Fatalf("domain describe:\n%s", out)
	}

	t.Run("mapped domain over https", func(t *testing.T) {
		r := c.eventuallyEdge("https "+mapped, c.gatewayHTTPS, mapped, pool, func(r edgeReply) bool { return r.code == 200 })
		if r.body != "Hello Routing!" {
			t.Fatalf("body %q", r.body)
		}
	})

	t.Run("per-service redirect", func(t *testing.T) {
		_, httpsPort, _ := net.SplitHostPort(c.gatewayHTTPS)
		r := c.eventuallyEdge("redirect", strings.TrimPrefix(c.gateway, "http://"), helloHost, nil, func(r edgeReply) bool { return r.code == http.StatusMovedPermanently })
		if want := fmt.Sprintf("https://%s:%s/", helloHost, httpsPort); r.code != http.StatusMovedPermanently || r.location != want {
			t.Fatalf("http %s: %d Location %q, want 301 %q", helloHost, r.code, r.location, want)
		}
		// The mapping follows config-network http-protocol, live.
		if r := edgeGet(strings.TrimPrefix(c.gateway, "http://"), mapped, nil); r.code != 200 {
			t.Fatalf("http %s before http-protocol=redirected: %+v", mapped, r)
		}
		c.mustRun("config", "set", "network", "http-protocol=redirected")
		c.eventuallyEdge("global redirect", strings.TrimPrefix(c.gateway, "http://"), mapped, nil, func(r edgeReply) bool {
			return r.code == http.StatusMovedPermanently && strings.HasPrefix(r.location, "https://"+mapped+":")
		})
	})

	t.Run("domain claimed once cluster-wide", func(t *testing.T) {
		// The seed's v1alpha1 shape, in another namespace.
		doc := fmt.Sprintf(`apiVersion: serving.knative.dev/v1alpha1
kind: DomainMapping
metadata:
  name: %s
  namespace: other
spec:
  ref:
    name: example-service
    kind: Service
    apiVersion: serving.knative.dev/v1
`, mapped)
		f := filepath.Join(t.TempDir(), "dm.yaml")
		os.WriteFile(f, []byte(doc), 0o600)
		if out := c.mustRun("apply", "-f", f); !strings.Contains(out, "DomainMapping '"+mapped+"' created") {
			t.Fatalf("apply:\n%s", out)
		}
		c.waitFor("second mapping refused", 30*time.Second, func() bool {
			out, _ := c.run("-n", "other", "domain", "describe", mapped)
			return strings.Contains(out, "DomainAlreadyClaimed")
		})
		// The first mapping keeps serving.
		if r := edgeGet(c.gatewayHTTPS, mapped, pool); r.code != 200 || r.body != "Hello Routing!" {
			t.Fatalf("first mapping after the second: %+v", r)
		}
	})

	t.Run("cluster-local", func(t *testing.T) {
		out := c.mustRun("service", "create", "private", "--image", c.image, "--env", "RESPONSE=private", "--cluster-local")
		const host = "private.default.svc.cluster.local"
		if !strings.Contains(out, "http://"+host) {
			t.Fatalf("create --cluster-local output:\n%s", out)
		}
		c.eventuallyEdge("internal listener", c.gatewayInternal, host, nil, func(r edgeReply) bool { return r.code == 200 && r.body == "private" })
		if r := edgeGet(strings.TrimPrefix(c.gateway, "http://"), host, nil); r.code != http.StatusNotFound {
			t.Fatalf("public listener answered for a cluster-local service: %+v", r)
		}
		if r := edgeGet(c.gatewayInternal, "private.default", nil); r.code != 200 || r.body != "private" {
			t.Fatalf("short cluster-local name: %+v", r)
		}
	})

	t.Run("secret encrypted at rest, key rotated", func(t *testing.T) {
		testSecretAtRest(t, c, "hello-cert", mapped, pool, certFile, keyFile)
	})

	if out := c.mustRun("domain", "delete", mapped); !strings.Contains(out, "Domain mapping '"+mapped+"' deleted in namespace 'default'.") {
		t.Fatalf("domain delete:\n%s", out)
	}
	// The claim passes to the other namespace's mapping.
	c.waitFor("claim released", 30*time.Second, func() bool {
		out, _ := c.run("-n", "other", "domain", "describe", mapped, "-o", "json")
		return strings.Contains(out, `"type": "DomainClaimed"`) && !strings.Contains(out, "DomainAlreadyClaimed")
	})
}
