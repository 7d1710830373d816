package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/auth"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

// call sends a request with bearer (none when empty) through client.
func call(t *testing.T, client *http.Client, base, bearer, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// issueToken creates a token as the bootstrap admin and returns it.
func issueToken(t *testing.T, client *http.Client, base string, spec auth.TokenSpec) auth.Token {
	t.Helper()
	body, _ := json.Marshal(auth.Token{APIVersion: auth.APIVersion, Kind: "Token", Spec: spec})
	code, b := call(t, client, base, token, "POST", auth.TokensPath, string(body))
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, b)
	}
	var tok auth.Token
	if err := json.Unmarshal(b, &tok); err != nil || tok.Status.Token == "" || tok.Metadata.Name == "" {
		t.Fatalf("token response %s (%v)", b, err)
	}
	return tok
}

func wantStatus(t *testing.T, code int, b []byte, wantCode int, wantReason, wantMsg string) {
	t.Helper()
	st := decodeStatus(t, b)
	if code != wantCode || int(st.Code) != wantCode || string(st.Reason) != wantReason || (wantMsg != "" && st.Message != wantMsg) {
		t.Fatalf("got %d %+v, want %d %s %q", code, st, wantCode, wantReason, wantMsg)
	}
}

func TestNamespaceScopedToken(t *testing.T) {
	st := memstore.New()
	srv, _ := newServerOn(t, st)
	c := http.DefaultClient
	alice := issueToken(t, c, srv.URL, auth.TokenSpec{Subject: "alice", Namespace: "dev", Role: auth.RoleEdit}).Status.Token

	dev := BasePath + "/namespaces/dev/services"
	if code, b := call(t, c, srv.URL, alice, "POST", dev, svcJSON("hello", "img:1")); code != http.StatusCreated {
		t.Fatalf("create in own namespace: %d %s", code, b)
	}
	if code, b := call(t, c, srv.URL, alice, "GET", dev+"/hello", ""); code != http.StatusOK {
		t.Fatalf("get in own namespace: %d %s", code, b)
	}
	code, b := call(t, c, srv.URL, alice, "GET", BasePath+"/namespaces/prod/services", "")
	wantStatus(t, code, b, 403, "Forbidden",
		`services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" in the namespace "prod"`)
	code, b = call(t, c, srv.URL, alice, "POST", BasePath+"/namespaces/prod/services", svcJSON("x", "img:1"))
	wantStatus(t, code, b, 403, "Forbidden", "")
	code, b = call(t, c, srv.URL, alice, "GET", BasePath+"/services", "")
	wantStatus(t, code, b, 403, "Forbidden",
		`services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" at the cluster scope`)
	code, b = call(t, c, srv.URL, alice, "GET", "/api/v1/namespaces/dev/secrets", "")
	wantStatus(t, code, b, 403, "Forbidden", "")
	code, b = call(t, c, srv.URL, alice, "GET", "/apis/kiln.dev/v1/configs/autoscaler", "")
	wantStatus(t, code, b, 403, "Forbidden", "")
	code, b = call(t, c, srv.URL, alice, "POST", auth.TokensPath, `{"spec":{"namespace":"prod","role":"admin"}}`)
	wantStatus(t, code, b, 403, "Forbidden", "")

	// Unauthenticated: no token, a wrong one.
	code, b = call(t, c, srv.URL, "", "GET", dev, "")
	wantStatus(t, code, b, 401, "Unauthorized", "")
	code, b = call(t, c, srv.URL, "not-a-token", "GET", dev, "")
	wantStatus(t, code, b, 401, "Unauthorized", "")

	// Only the hash is stored.
	kvs, _, _ := st.List(t.Context(), store.TokensPrefix)
	for _, kv := range kvs {
		if strings.Contains(string(kv.Value), alice) || strings.Contains(kv.Key, alice) {
			t.Fatalf("token stored in clear: %s", kv.Key)
		}
	}
}

func TestTokenListRevokeExpire(t *testing.T) {
	st := memstore.New()
	srv, _ := newServerOn(t, st)
	c := http.DefaultClient
	tok := issueToken(t, c, srv.URL, auth.TokenSpec{Namespace: "dev", Role: auth.RoleView})
	if !strings.HasPrefix(tok.Spec.Subject, "token-") {
		t.Fatalf("generated subject %q", tok.Spec.Subject)
	}
	code, b := call(t, c, srv.URL, token, "GET", auth.TokensPath, "")
	if code != 200 || !strings.Contains(string(b), tok.Metadata.Name) || strings.Contains(string(b), tok.Status.Token) {
		t.Fatalf("list: %d %s", code, b)
	}
	if code, b := call(t, c, srv.URL, tok.Status.Token, "GET", BasePath+"/namespaces/dev/routes", ""); code != 200 {
		t.Fatalf("before revoke: %d %s", code, b)
	}
	if code, b := call(t, c, srv.URL, token, "DELETE", auth.TokensPath+"/"+tok.Metadata.Name, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	code, b = call(t, c, srv.URL, tok.Status.Token, "GET", BasePath+"/namespaces/dev/routes", "")
	wantStatus(t, code, b, 401, "Unauthorized", "")
	if _, err := st.Get(t.Context(), store.BindingKey(tok.Spec.Subject)); err == nil {
		t.Fatal("a generated subject's roles outlive its token")
	}
	code, b = call(t, c, srv.URL, token, "DELETE", auth.TokensPath+"/"+tok.Metadata.Name, "")
	wantStatus(t, code, b, 404, "NotFound", "")

	short := issueToken(t, c, srv.URL, auth.TokenSpec{Namespace: "dev", Role: auth.RoleView, ExpirationSeconds: 1})
	if short.Status.ExpirationTimestamp == nil {
		t.Fatal("no expiration")
	}
	time.Sleep(time.Until(*short.Status.ExpirationTimestamp) + 10*time.Millisecond)
	code, b = call(t, c, srv.URL, short.Status.Token, "GET", BasePath+"/namespaces/dev/routes", "")
	wantStatus(t, code, b, 401, "Unauthorized", "")

	for _, bad := range []string{
		`{"spec":{"namespace":"dev","role":"owner"}}`,
		`{"spec":{"role":"edit"}}`,
		`{"spec":{"namespace":"dev","role":"cluster-admin"}}`,
		`{"spec":{"namespace":"dev","role":"edit","subject":"Not Valid"}}`,
	} {
		if code, b := call(t, c, srv.URL, token, "POST", auth.TokensPath, bad); code < 400 || code >= 500 {
			t.Fatalf("%s: %d %s", bad, code, b)
		}
	}
}

// TestHTTPSClientCertificates serves the API over TLS: a user certificate
// from the client CA names its subject; another role's certificate is no
// user; a bearer token still works beside certificates.
func TestHTTPSClientCertificates(t *testing.T) {
	now := time.Now()
	ca, _, err := pki.NewCA("test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(id pki.Identity, hosts ...string) tls.Certificate {
		crt, key, err := ca.Issue(id, hosts, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		p, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	reg := registry.New(memstore.New())
	srv := httptest.NewUnstartedServer(New(reg, Options{Token: token}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair(pki.Identity{Role: pki.RoleAPIServer}, "127.0.0.1")},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}

	anon := client()
	issueToken(t, anon, srv.URL, auth.TokenSpec{Subject: "alice", Namespace: "dev", Role: auth.RoleView})
	code, b := call(t, anon, srv.URL, "", "GET", BasePath+"/namespaces/dev/services", "")
	wantStatus(t, code, b, 401, "Unauthorized", "")

	alice := client(pair(pki.Identity{Role: pki.RoleUser, Name: "alice"}))
	if code, b := call(t, alice, srv.URL, "", "GET", BasePath+"/namespaces/dev/services", ""); code != 200 {
		t.Fatalf("alice's certificate: %d %s", code, b)
	}
	code, b = call(t, alice, srv.URL, "", "GET", BasePath+"/namespaces/prod/services", "")
	wantStatus(t, code, b, 403, "Forbidden",
		`services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" in the namespace "prod"`)

	ctl := client(pair(pki.Identity{Role: pki.RoleController}))
	code, b = call(t, ctl, srv.URL, "", "GET", BasePath+"/namespaces/dev/services", "")
	wantStatus(t, code, b, 401, "Unauthorized", "")

	// A certificate of another CA never names a subject: the client does
	// not offer it to this server, or the handshake fails.
	other, _, _ := pki.NewCA("other", time.Hour, now)
	crt, key, _ := other.Issue(pki.Identity{Role: pki.RoleUser, Name: "alice"}, nil, time.Hour, now)
	forged, _ := tls.X509KeyPair(crt, key)
	fc := client(forged)
	fc.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forged, nil }
	req, _ := http.NewRequest("GET", srv.URL+BasePath+"/namespaces/dev/services", nil)
	if resp, err := fc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate of another CA was accepted: %d", resp.StatusCode)
	}
}
