package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
)

func TestDomainMappingAPI(t *testing.T) {
	srv, reg := newServer(t)
	const seed = `apiVersion: serving.knative.dev/v1alpha1
kind: DomainMapping
metadata:
  name: example-domain
  namespace: default
spec:
  ref:
    name: example-service
    kind: Service
    apiVersion: serving.knative.dev/v1
`
	// The seed's v1alpha1 document, posted to either version's path.
	code, b := do(t, srv, http.MethodPost, AlphaPath+"/namespaces/default/domainmappings", seed)
	if code != http.StatusCreated {
		t.Fatalf("create v1alpha1: %d %s", code, b)
	}
	var dm v1beta1.DomainMapping
	json.Unmarshal(b, &dm)
	if dm.APIVersion != v1beta1.APIVersion || dm.Spec.Ref.Namespace != "default" || dm.Metadata.Generation != 1 {
		t.Fatalf("stored: %+v", dm)
	}
	if _, err := reg.DomainMappings().Get(t.Context(), "default", "example-domain"); err != nil {
		t.Fatal(err)
	}
	code, b = do(t, srv, http.MethodGet, BetaPath+"/namespaces/default/domainmappings", "")
	if code != 200 || !strings.Contains(string(b), `"kind":"DomainMappingList"`) || !strings.Contains(string(b), `"apiVersion":"serving.knative.dev/v1beta1"`) {
		t.Fatalf("list: %d %s", code, b)
	}
	// Never under the v1 group version.
	if code, _ := do(t, srv, http.MethodGet, BasePath+"/namespaces/default/domainmappings", ""); code != http.StatusNotFound {
		t.Fatalf("v1 path served domainmappings: %d", code)
	}

	// Every error at once, with Knative's paths.
	bad := `{"apiVersion":"serving.knative.dev/v1beta1","kind":"DomainMapping","metadata":{"name":"Bad_Name"},
		"spec":{"ref":{"name":"x","kind":"Service","apiVersion":"serving.knative.dev/v1","namespace":"other"},"tls":{"secretName":""}}}`
	code, b = do(t, srv, http.MethodPost, BetaPath+"/namespaces/default/domainmappings", bad)
	st := decodeStatus(t, b)
	var paths []string
	for _, c := range st.Details.Causes {
		paths = append(paths, c.Field)
	}
	if code != http.StatusUnprocessableEntity || strings.Join(paths, ",") != "metadata.name,spec.ref.namespace,spec.tls.secretName" {
		t.Fatalf("invalid: %d %v %s", code, paths, b)
	}
	// A Service document is not a DomainMapping.
	if code, _ := do(t, srv, http.MethodPost, BetaPath+"/namespaces/default/domainmappings", svcJSON("x", "img")); code != http.StatusBadRequest {
		t.Fatalf("service posted as a mapping: %d", code)
	}
}

func TestSecretAPI(t *testing.T) {
	srv, _ := newServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example.com"}, DNSNames: []string{"a.example.com"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kb, _ := x509.MarshalECPrivateKey(key)
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kp := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	body, _ := json.Marshal(corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: kp},
		Metadata: metaNamed("cert")})
	code, b := do(t, srv, http.MethodPost, SecretsPath+"/namespaces/default/secrets", string(body))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, path := range []string{"/namespaces/default/secrets", "/namespaces/default/secrets/cert"} {
		code, b = do(t, srv, http.MethodGet, SecretsPath+path, "")
		if code != 200 || !strings.Contains(string(b), "tls.crt") || strings.Contains(string(b), "tls.key") {
			t.Fatalf("GET %s: %d (private key must never be returned) %s", path, code, b)
		}
	}
	// A key that does not match the certificate is refused up front.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ob, _ := x509.MarshalECPrivateKey(other)
	body, _ = json.Marshal(corev1.Secret{Type: corev1.SecretTypeTLS, Metadata: metaNamed("mismatch"),
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ob})}})
	if code, b = do(t, srv, http.MethodPost, SecretsPath+"/namespaces/default/secrets", string(body)); code != http.StatusUnprocessableEntity {
		t.Fatalf("mismatched pair: %d %s", code, b)
	}
	if code, _ = do(t, srv, http.MethodDelete, SecretsPath+"/namespaces/default/secrets/cert", ""); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ = do(t, srv, http.MethodGet, SecretsPath+"/namespaces/default/secrets/cert", ""); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}
	// Without the token: refused.
	resp, err := http.Get(srv.URL + SecretsPath + "/namespaces/default/secrets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated list: %d", resp.StatusCode)
	}
}

func metaNamed(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
