package gateway

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
	"testing"
	"time"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/xds"
)

func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), pool
}

func putFullRoute(t *testing.T, st store.Store, ns, name, url string, labels, ann map[string]string, traffic ...servingv1.TrafficTarget) {
	t.Helper()
	r := servingv1.Route{Metadata: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: ann}}
	r.Status.URL = url
	r.Status.Address = &metav1.Addressable{URL: "http://" + name + "." + ns + ".svc.cluster.local"}
	r.Status.Traffic = traffic
	testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "routes", ns, name), r)
}

// getVia sends GET /path?q=1 with host to addr, over TLS with SNI = host
// when pool is set (curl --resolve host:port:addr https://host/...).
func getVia(t *testing.T, addr net.Addr, host string, pool *x509.CertPool) (reply, error) {
	t.Helper()
	tr := &http.Transport{}
	scheme := "http"
	if pool != nil {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host}
	}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr.String())
	}
	cl := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, scheme+"://"+host+"/path?q=1", nil)
	resp, err := cl.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}, nil
}

func eventuallyVia(t *testing.T, what string, addr func() net.Addr, host string, pool *x509.CertPool, ok func(reply) bool) reply {
	t.Helper()
	var last reply
	testenv.EventuallyNil(t, 0, func() error {
		a := addr()
		if a == nil {
			return fmt.Errorf("%s: listener not open", what)
		}
		var err error
		if last, err = getVia(t, a, host, pool); err == nil && ok(last) {
			return nil
		}
		return fmt.Errorf("%s: last reply %d %q, error %v", what, last.status, last.body, err)
	})
	return last
}

// TestGatewayEdgeListeners drives the gateway through the xds server over
// etcd: a DomainMapping served over HTTPS by SNI from an SDS secret, a
// cluster-local route only on the internal listener, and a per-service
// HTTP→HTTPS redirect.
func TestGatewayEdgeListeners(t *testing.T) {
	const mapped = "hello.example.org"
	certPEM, keyPEM, pool := selfSigned(t, mapped)
	b1, priv := backend(t, "hello", 0), backend(t, "private", 0)
	e := startEnv(t, func(st store.Store) {
		putFullRoute(t, st, "default", "hello", "http://"+helloHost, nil,
			map[string]string{xds.HTTPOptionAnnotation: "redirected"},
			servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
		putFullRoute(t, st, "default", "private", "http://private.default.svc.cluster.local",
			map[string]string{servingv1.VisibilityLabelKey: servingv1.VisibilityClusterLocal}, nil,
			servingv1.TrafficTarget{RevisionName: "private-00001", Percent: pct(100)})
		putInstance(t, st, "default", "hello-00001", "i1", hostport(b1))
		putInstance(t, st, "default", "private-00001", "i2", hostport(priv))
		testenv.PutJSON(t, st, store.SecretKey("default", "hello-cert"), corev1.Secret{
			Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello-cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}})
		dm := v1beta1.DomainMapping{Metadata: metav1.ObjectMeta{Namespace: "default", Name: mapped},
			Spec: v1beta1.DomainMappingSpec{Ref: v1beta1.KReference{Kind: "Service", Name: "hello", Namespace: "default"},
				TLS: &v1beta1.SecretTLS{SecretName: "hello-cert"}}}
		dm.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionDomainClaimed, Status: metav1.ConditionTrue}}
		testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "domainmappings", "default", mapped), dm)
	})
	https := func() net.Addr { return e.gw.AddrOf(xds.HTTPSListenerName) }
	internal := func() net.Addr { return e.gw.AddrOf(xds.InternalListenerName) }
	public := func() net.Addr { return e.gw.Addr() }

	t.Run("mapped domain over https by SNI", func(t *testing.T) {
		r := eventuallyVia(t, "https", https, mapped, pool, func(r reply) bool { return r.status == 200 })
		if r.body != "hello" || r.header.Get("X-Seen-Host") != "hello.default.svc.cluster.local" || r.header.Get("X-Seen-XFP") != "https" ||
			r.header.Get("X-Seen-Forwarded") != "for=127.0.0.1;proto=https" {
			t.Fatalf("reply %q, headers %v", r.body, r.header)
		}
		// No certificate for an unknown server name (and no default one).
		if _, err := getVia(t, https(), "other.example.org", pool); err == nil {
			t.Fatal("handshake for an unmapped name succeeded")
		}
	})
	t.Run("mapped domain over http follows the global http-protocol", func(t *testing.T) {
		if r, err := getVia(t, public(), mapped, nil); err != nil || r.status != 200 || r.body != "hello" {
			t.Fatalf("http mapping: %+v %v", r, err)
		}
	})
	t.Run("per-service redirect", func(t *testing.T) {
		r, err := getVia(t, public(), helloHost, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(https().String())
		if want := "https://" + helloHost + ":" + port + "/path?q=1"; r.status != http.StatusMovedPermanently || r.header.Get("Location") != want {
			t.Fatalf("redirect: %d Location %q, want 301 %q", r.status, r.header.Get("Location"), want)
		}
	})
	t.Run("cluster-local only on the internal listener", func(t *testing.T) {
		const host = "private.default.svc.cluster.local"
		if r, err := getVia(t, public(), host, nil); err != nil || r.status != http.StatusNotFound {
			t.Fatalf("public listener answered %+v %v", r, err)
		}
		for _, h := range []string{host, "private.default.svc", "private.default"} {
			if r, err := getVia(t, internal(), h, nil); err != nil || r.status != 200 || r.body != "private" {
				t.Fatalf("internal %s: %+v %v", h, r, err)
			}
		}
		// Public routes are reachable internally under their cluster-local name.
		if r, err := getVia(t, internal(), "hello.default.svc.cluster.local", nil); err != nil || r.status != 200 {
			t.Fatalf("internal hello: %+v %v", r, err)
		}
	})
}
