package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func adminGet(t *testing.T, g *Gateway, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminReadyBeforeConfig(t *testing.T) {
	g := New(Config{XDSAddresses: []string{"127.0.0.1:1"}}, testenv.Logger())
	w := httptest.NewRecorder()
	g.adminReady(w, httptest.NewRequest(http.MethodGet, "/ready", nil))
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "PRE_INITIALIZING\n" {
		t.Fatalf("ready before config: %d %q", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	g.adminConfigDump(w, httptest.NewRequest(http.MethodGet, "/config_dump", nil))
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != "{}" {
		t.Fatalf("config_dump before config: %d %q", w.Code, w.Body.String())
	}
}

// The seed's check (section 4.5.2), with the gateway's admin listener in
// place of `oc get routes.route.openshift.io -o yaml | grep`.
func TestAdminConfigDump(t *testing.T) {
	const mapped = "hello.example.org"
	certPEM, keyPEM, _ := selfSigned(t, mapped)
	b := backend(t, "hello", 0)
	e := startEnv(t, func(st store.Store) {
		putFullRoute(t, st, "default", "hello", "http://"+helloHost,
			map[string]string{"team": "payments"}, map[string]string{"example.com/owner": "alice"},
			servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: pct(100)})
		putInstance(t, st, "default", "hello-00001", "i1", hostport(b))
		testenv.PutJSON(t, st, store.SecretKey("default", "hello-cert"), corev1.Secret{
			Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello-cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}})
		dm := v1beta1.DomainMapping{Metadata: metav1.ObjectMeta{Namespace: "default", Name: mapped},
			Spec: v1beta1.DomainMappingSpec{Ref: v1beta1.KReference{Kind: "Service", Name: "hello", Namespace: "default"},
				TLS: &v1beta1.SecretTLS{SecretName: "hello-cert"}}}
		dm.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionDomainClaimed, Status: metav1.ConditionTrue}}
		testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "domainmappings", "default", mapped), dm)
	})
	if code, body := adminGet(t, e.gw, "/ready"); code != http.StatusOK || body != "LIVE\n" {
		t.Fatalf("/ready: %d %q", code, body)
	}
	// The secret arrives with the HTTPS listener, possibly after Ready.
	var body string
	testenv.Eventually(t, "the secret in /config_dump", 0, func() bool {
		var code int
		code, body = adminGet(t, e.gw, "/config_dump")
		if code != http.StatusOK {
			t.Fatalf("/config_dump: %d %s", code, body)
		}
		return strings.Contains(body, `"name": "default/hello-cert"`)
	})
	for _, want := range []string{
		`"team": "payments"`, `"example.com/owner": "alice"`,
		`"ingressName": "hello"`, `"ingressNamespace": "default"`,
		`"kiln.dev/route"`, `"name": "default/hello-cert"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"`,
		`"cluster_name": "default/hello-00001"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("config_dump lacks %s", want)
		}
	}
	for _, leak := range []string{"PRIVATE KEY", "private_key", "inline_bytes", "CERTIFICATE"} {
		if strings.Contains(body, leak) {
			t.Errorf("config_dump shows %s", leak)
		}
	}
	var parsed struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &parsed); err != nil || len(parsed.Configs) != 5 {
		t.Fatalf("config_dump is not a ConfigDump with 5 configs (%v): %.300s", err, body)
	}
}
