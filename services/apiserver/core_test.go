package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	k8scorev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/store"
)

// doCT is do with a Content-Type and Accept.
func doCT(t *testing.T, srv *httptest.Server, method, path, ctype, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// k8sStatus decodes a Kubernetes Status body.
func k8sStatus(t *testing.T, b []byte) k8smeta.Status {
	t.Helper()
	var st k8smeta.Status
	if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a Status: %s (%v)", b, err)
	}
	return st
}

func wantK8sStatus(t *testing.T, code int, b []byte, wantCode int, wantReason k8smeta.StatusReason, wantMsg string) k8smeta.Status {
	t.Helper()
	st := k8sStatus(t, b)
	if code != wantCode || st.Code != int32(wantCode) || st.Reason != wantReason || (wantMsg != "" && st.Message != wantMsg) {
		t.Fatalf("got %d %s %q, want %d %s %q", code, st.Reason, st.Message, wantCode, wantReason, wantMsg)
	}
	return st
}

func tlsPair(t *testing.T) (crt, key []byte) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example.com"}, DNSNames: []string{"a.example.com"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestNamespaceCRUD(t *testing.T) {
	srv, _ := newServer(t)
	const nsPath = CorePath + "/namespaces"

	code, b := do(t, srv, http.MethodPost, nsPath, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a","labels":{"team":"a"}}}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var ns k8scorev1.Namespace
	if err := json.Unmarshal(b, &ns); err != nil || ns.Kind != "Namespace" || ns.Status.Phase != k8scorev1.NamespaceActive ||
		ns.Labels[k8scorev1.LabelMetadataName] != "team-a" || ns.ResourceVersion == "" || ns.UID == "" {
		t.Fatalf("created namespace: %s (%v)", b, err)
	}
	code, b = do(t, srv, http.MethodPost, nsPath, `{"metadata":{"name":"team-a"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonAlreadyExists, `namespaces "team-a" already exists`)

	code, b = do(t, srv, http.MethodPost, nsPath, `{"metadata":{"name":"Bad_Name"}}`)
	st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
	if len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.name" {
		t.Fatalf("invalid name causes: %+v", st.Details)
	}

	code, b = do(t, srv, http.MethodGet, nsPath+"/team-a", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"phase":"Active"`) {
		t.Fatalf("get: %d %s", code, b)
	}
	// The built-in namespaces exist without a record.
	for _, name := range []string{"default", "knative-serving"} {
		if code, b := do(t, srv, http.MethodGet, nsPath+"/"+name, ""); code != http.StatusOK {
			t.Fatalf("get %s: %d %s", name, code, b)
		}
	}
	code, b = do(t, srv, http.MethodGet, nsPath+"/nope", "")
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `namespaces "nope" not found`)

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"default", "knative-serving", "team-a"}},
		{"?labelSelector=team%3Da", []string{"team-a"}},
		{"?labelSelector=team!%3Da", []string{"default", "knative-serving"}},
		{"?fieldSelector=metadata.name%3Ddefault", []string{"default"}},
	} {
		code, b := do(t, srv, http.MethodGet, nsPath+tc.query, "")
		var list k8scorev1.NamespaceList
		if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil {
			t.Fatalf("list %s: %d %s", tc.query, code, b)
		}
		var got []string
		for _, n := range list.Items {
			got = append(got, n.Name)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("list %s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	code, b = do(t, srv, http.MethodGet, nsPath+"?labelSelector=a%20in%20(", "")
	wantK8sStatus(t, code, b, http.StatusBadRequest, k8smeta.StatusReasonBadRequest, "")

	code, b = do(t, srv, http.MethodDelete, nsPath+"/default", "")
	wantK8sStatus(t, code, b, http.StatusForbidden, k8smeta.StatusReasonForbidden, `namespaces "default" is forbidden: this namespace may not be deleted`)
	code, b = do(t, srv, http.MethodDelete, nsPath+"/team-a", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"phase":"Terminating"`) || !strings.Contains(string(b), "deletionTimestamp") {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, b := do(t, srv, http.MethodGet, nsPath+"/team-a", ""); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d %s", code, b)
	}
	// Labels change by patch (kubectl label) and update; a built-in
	// namespace gets a record on its first change.
	code, b = doCT(t, srv, http.MethodPatch, nsPath+"/default", "application/strategic-merge-patch+json", `{"metadata":{"labels":{"env":"dev"}}}`)
	if code != http.StatusOK || !strings.Contains(string(b), `"env":"dev"`) || !strings.Contains(string(b), `"kubernetes.io/metadata.name":"default"`) {
		t.Fatalf("patch default: %d %s", code, b)
	}
	if code, b := do(t, srv, http.MethodGet, nsPath+"?labelSelector=env%3Ddev", ""); code != http.StatusOK || !strings.Contains(string(b), `"name":"default"`) {
		t.Fatalf("list after label: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodPut, nsPath+"/default", `{"metadata":{"name":"default","resourceVersion":"1"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict, "")
	code, b = doCT(t, srv, http.MethodPatch, nsPath+"/default", "application/merge-patch+json", `{"metadata":{"labels":{"bad key!":"x"}}}`)
	st = wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
	if len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.labels" {
		t.Fatalf("invalid label causes: %s", b)
	}
	// The finalize subresource is not served: 404, not a silent success.
	code, b = do(t, srv, http.MethodPut, nsPath+"/default/finalize", `{"metadata":{"name":"default"}}`)
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, "")
}

// seedNamespace puts a Service, a DomainMapping, a TLS secret, a ConfigMap
// and a PersistentVolumeClaim into ns.
func seedNamespace(t *testing.T, reg *registry.Registry, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := reg.Store().Put(ctx, store.RegistryKey("serving.knative.dev", "services", ns, "hello"), []byte(svcJSON("hello", "img")), store.IfRevision(0)); err != nil {
		t.Fatal(err)
	}
	dm := &v1beta1.DomainMapping{}
	dm.Metadata.Name, dm.Metadata.Namespace = "a.example.com", ns
	dm.Spec.Ref.Name, dm.Spec.Ref.Kind, dm.Spec.Ref.APIVersion = "hello", "Service", "serving.knative.dev/v1"
	if _, err := reg.DomainMappings().Create(ctx, dm); err != nil {
		t.Fatal(err)
	}
	crt, key := tlsPair(t)
	sec := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	sec.Metadata.Name, sec.Metadata.Namespace = "cert", ns
	if _, err := secret.New(reg.Store(), nil).Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	cm := `{"metadata":{"name":"settings","namespace":"` + ns + `"},"data":{"k":"v"}}`
	if _, err := reg.Store().Put(ctx, store.ConfigMapKey(ns, "settings"), []byte(cm), store.IfRevision(0)); err != nil {
		t.Fatal(err)
	}
	pvc := `{"metadata":{"name":"data","namespace":"` + ns + `"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}`
	if _, err := reg.Store().Put(ctx, store.PersistentVolumeClaimKey(ns, "data"), []byte(pvc), store.IfRevision(0)); err != nil {
		t.Fatal(err)
	}
}

// contents lists the keys left in ns under registry/, secrets/,
// configmaps/ and persistentvolumeclaims/.
func contents(t *testing.T, st store.Store, ns string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{store.RegistryPrefix, store.SecretsPrefix, store.ConfigMapsPrefix, store.PersistentVolumeClaimsPrefix} {
		kvs, _, err := st.List(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if strings.Contains(kv.Key, "/"+ns+"/") {
				out = append(out, kv.Key)
			}
		}
	}
	return out
}

func TestNamespaceDeleteCascades(t *testing.T) {
	srv, reg := newServer(t)
	if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces", `{"metadata":{"name":"gone"}}`); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	seedNamespace(t, reg, "gone")
	seedNamespace(t, reg, "kept")
	if len(contents(t, reg.Store(), "gone")) != 5 {
		t.Fatalf("seeded: %v", contents(t, reg.Store(), "gone"))
	}
	if code, b := do(t, srv, http.MethodDelete, CorePath+"/namespaces/gone", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if left := contents(t, reg.Store(), "gone"); len(left) != 0 {
		t.Fatalf("left in deleted namespace: %v", left)
	}
	if left := contents(t, reg.Store(), "kept"); len(left) != 5 {
		t.Fatalf("other namespace touched: %v", left)
	}
	// The namespace can be created again, empty.
	if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces", `{"metadata":{"name":"gone"}}`); code != http.StatusCreated {
		t.Fatalf("re-create: %d %s", code, b)
	}
}

func TestTerminatingNamespaceRefusesWritesAndSweepFinishes(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	seedNamespace(t, reg, "dying")
	// An apiserver stopped after marking the namespace, before deleting.
	now := k8smeta.Now()
	rec, _ := json.Marshal(k8scorev1.Namespace{ObjectMeta: k8smeta.ObjectMeta{Name: "dying", DeletionTimestamp: &now},
		Status: k8scorev1.NamespaceStatus{Phase: k8scorev1.NamespaceTerminating}})
	if _, err := reg.Store().Put(ctx, store.NamespaceKey("dying"), rec); err != nil {
		t.Fatal(err)
	}
	code, b := do(t, srv, http.MethodPost, svcsIn("dying"), svcJSON("new", "img"))
	st := wantK8sStatus(t, code, b, http.StatusForbidden, k8smeta.StatusReasonForbidden,
		`services.serving.knative.dev "new" is forbidden: unable to create new content in namespace dying because it is being terminated`)
	if c := st.Details.Causes; len(c) != 1 || c[0].Type != k8scorev1.NamespaceTerminatingCause || c[0].Field != "metadata.namespace" {
		t.Fatalf("causes: %s", b)
	}
	code, b = do(t, srv, http.MethodPut, CorePath+"/namespaces/dying/secrets/cert", `{"metadata":{"name":"cert"}}`)
	wantK8sStatus(t, code, b, http.StatusForbidden, k8smeta.StatusReasonForbidden,
		`secrets "cert" is forbidden: unable to create new content in namespace dying because it is being terminated`)
	code, b = do(t, srv, http.MethodPost, CorePath+"/namespaces/dying/configmaps", `{"metadata":{"name":"late"}}`)
	wantK8sStatus(t, code, b, http.StatusForbidden, k8smeta.StatusReasonForbidden,
		`configmaps "late" is forbidden: unable to create new content in namespace dying because it is being terminated`)
	// Reads still work, and a namespace without a record still takes writes.
	if code, b := do(t, srv, http.MethodGet, svcsIn("dying")+"/hello", ""); code != http.StatusOK {
		t.Fatalf("read in terminating namespace: %d %s", code, b)
	}
	if code, b := do(t, srv, http.MethodPost, svcsIn("implicit"), svcJSON("new", "img")); code != http.StatusCreated {
		t.Fatalf("write into an implicit namespace: %d %s", code, b)
	}

	sweepCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- FinishNamespaceDeletions(sweepCtx, reg.Store(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := reg.Store().Get(ctx, store.NamespaceKey("dying"))
		if errdefs.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sweep did not finish the Terminating namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left := contents(t, reg.Store(), "dying"); len(left) != 0 {
		t.Fatalf("left after sweep: %v", left)
	}
}

func svcsIn(ns string) string { return BasePath + "/namespaces/" + ns + "/services" }

func TestServiceAccountsReadOnly(t *testing.T) {
	srv, _ := newServer(t)
	code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces/team/serviceaccounts/default", "")
	var sa k8scorev1.ServiceAccount
	if err := json.Unmarshal(b, &sa); code != http.StatusOK || err != nil || sa.Kind != "ServiceAccount" || sa.APIVersion != "v1" ||
		sa.Name != "default" || sa.Namespace != "team" {
		t.Fatalf("get default: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodGet, CorePath+"/namespaces/team/serviceaccounts", "")
	var list k8scorev1.ServiceAccountList
	if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil || len(list.Items) != 1 || list.Items[0].Name != "default" {
		t.Fatalf("list: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodGet, CorePath+"/namespaces/team/serviceaccounts/builder", "")
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `serviceaccounts "builder" not found`)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		path := CorePath + "/namespaces/team/serviceaccounts/default"
		if m == http.MethodPost {
			path = CorePath + "/namespaces/team/serviceaccounts"
		}
		code, b := do(t, srv, m, path, `{"metadata":{"name":"default"}}`)
		wantK8sStatus(t, code, b, http.StatusMethodNotAllowed, k8smeta.StatusReasonMethodNotAllowed, "")
	}
}

func TestUnservedCoreKinds(t *testing.T) {
	srv, _ := newServer(t)
	// Service accounts are static: there is nothing to watch.
	for _, path := range []string{"/serviceaccounts", "/namespaces/default/serviceaccounts"} {
		code, b := do(t, srv, http.MethodGet, CorePath+path+"?watch=true", "")
		wantK8sStatus(t, code, b, http.StatusMethodNotAllowed, k8smeta.StatusReasonMethodNotAllowed, "")
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, CorePath + "/namespaces/default/events"},
		{http.MethodPost, CorePath + "/namespaces/default/replicationcontrollers"},
		{http.MethodGet, CorePath + "/namespaces/default/nodes/x"},
		{http.MethodDelete, CorePath + "/namespaces/default/events/x"},
		{http.MethodGet, CorePath + "/endpoints"},
	} {
		code, b := do(t, srv, tc.method, tc.path, `{}`)
		wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, "the server could not find the requested resource")
	}
}

const autoscalerCM = CorePath + "/namespaces/knative-serving/configmaps/config-autoscaler"

func getConfigMap(t *testing.T, srv *httptest.Server, path string) k8scorev1.ConfigMap {
	t.Helper()
	code, b := do(t, srv, http.MethodGet, path, "")
	var cm k8scorev1.ConfigMap
	if err := json.Unmarshal(b, &cm); code != http.StatusOK || err != nil || cm.Kind != "ConfigMap" {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	return cm
}

func TestConfigMapsAreKilnConfigs(t *testing.T) {
	srv, reg := newServer(t)
	cm := getConfigMap(t, srv, autoscalerCM)
	if cm.Namespace != "knative-serving" || cm.ResourceVersion != "0" || len(cm.Data) != 0 {
		t.Fatalf("unstored config: %+v", cm)
	}
	code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces/knative-serving/configmaps", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"name":"config-network"`) || !strings.Contains(string(b), `"kind":"ConfigMapList"`) {
		t.Fatalf("list: %d %s", code, b)
	}
	if code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces/default/configmaps", ""); code != http.StatusOK || strings.Contains(string(b), "config-") {
		t.Fatalf("list elsewhere: %d %s", code, b)
	}

	for _, tc := range []struct {
		name, ctype, patch, key, want string
	}{
		{"strategic", "application/strategic-merge-patch+json", `{"data":{"container-concurrency-target-default":"50"}}`, "container-concurrency-target-default", "50"},
		{"merge", "application/merge-patch+json", `{"data":{"target-burst-capacity":"100"}}`, "target-burst-capacity", "100"},
		{"json", "application/json-patch+json", `[{"op":"add","path":"/data/stable-window","value":"90s"}]`, "stable-window", "90s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := doCT(t, srv, http.MethodPatch, autoscalerCM, tc.ctype, tc.patch)
			if code != http.StatusOK {
				t.Fatalf("patch: %d %s", code, b)
			}
			stored, ok := storedConfig(t, reg, "autoscaler")
			if !ok || stored[tc.key] != tc.want {
				t.Fatalf("stored config after %s patch: %v", tc.name, stored)
			}
		})
	}
	stored, _ := storedConfig(t, reg, "autoscaler")
	if len(stored) != 3 {
		t.Fatalf("patches must merge, stored: %v", stored)
	}
	// The kiln.dev configs API sees the same document and revision.
	cm = getConfigMap(t, srv, autoscalerCM)
	code, b = do(t, srv, http.MethodGet, "/apis/kiln.dev/v1/configs/autoscaler", "")
	if c := decodeConfig(t, b); code != http.StatusOK || c.Metadata.ResourceVersion != cm.ResourceVersion || c.Data["stable-window"] != "90s" {
		t.Fatalf("configs API: %d %s (configmap rv %s)", code, b, cm.ResourceVersion)
	}

	code, b = doCT(t, srv, http.MethodPatch, autoscalerCM, "application/merge-patch+json", `{"data":{"target-burst-capacity":"lots"}}`)
	st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
	if len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "data[target-burst-capacity]" {
		t.Fatalf("invalid value causes: %s", b)
	}
	if stored, _ := storedConfig(t, reg, "autoscaler"); stored["target-burst-capacity"] != "100" {
		t.Fatalf("invalid patch was written: %v", stored)
	}

	// PUT (kubectl edit, replace) is a compare-and-swap on resourceVersion.
	cm.Data = map[string]string{"stable-window": "2m"}
	body, _ := json.Marshal(cm)
	if code, b := do(t, srv, http.MethodPut, autoscalerCM, string(body)); code != http.StatusOK {
		t.Fatalf("put: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodPut, autoscalerCM, string(body)) // stale resourceVersion now
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict, "")
	code, b = doCT(t, srv, http.MethodPatch, autoscalerCM, "application/merge-patch+json",
		`{"metadata":{"resourceVersion":"`+cm.ResourceVersion+`"},"data":{"stable-window":"3m"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict, "")
	code, b = doCT(t, srv, http.MethodPatch, autoscalerCM, "application/apply-patch+yaml", `data: {}`)
	wantK8sStatus(t, code, b, http.StatusUnsupportedMediaType, k8smeta.StatusReasonUnsupportedMediaType, "")

	// The config ConfigMaps always exist; other names are users' and
	// absent until created.
	code, b = do(t, srv, http.MethodPost, CorePath+"/namespaces/knative-serving/configmaps", `{"metadata":{"name":"config-network"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonAlreadyExists, `configmaps "config-network" already exists`)
	for _, path := range []string{CorePath + "/namespaces/default/configmaps/config-autoscaler", CorePath + "/namespaces/knative-serving/configmaps/config-nope"} {
		code, b := do(t, srv, http.MethodGet, path, "")
		wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, "")
	}

	// DELETE puts every key back at its default.
	if code, b := do(t, srv, http.MethodDelete, autoscalerCM, ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if _, ok := storedConfig(t, reg, "autoscaler"); ok {
		t.Fatal("config still stored after delete")
	}
	if cm := getConfigMap(t, srv, autoscalerCM); len(cm.Data) != 0 || cm.ResourceVersion != "0" {
		t.Fatalf("after delete: %+v", cm)
	}
}

// TestSecretKubectlApply replays what `kubectl create secret tls X --cert
// --key --dry-run=client -o yaml | kubectl apply -f -` sends: a create whose
// last-applied annotation holds the whole manifest, then a strategic merge
// patch on the next apply.
func TestSecretKubectlApply(t *testing.T) {
	srv, reg := newServer(t)
	crt, key := tlsPair(t)
	manifest := k8scorev1.Secret{TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: k8smeta.ObjectMeta{Name: "site"},
		Type: k8scorev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}
	applied, _ := json.Marshal(manifest)
	manifest.Annotations = map[string]string{lastApplied: string(applied) + "\n"}
	body, _ := json.Marshal(manifest)
	code, b := doCT(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets", "application/json", string(body))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	keyB64, _ := json.Marshal(key) // base64, as on the wire
	check := func(what string, b []byte) {
		t.Helper()
		if strings.Contains(string(b), "tls.key") || strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), strings.Trim(string(keyB64), `"`)) {
			t.Fatalf("%s returned key material: %s", what, b)
		}
		var sec k8scorev1.Secret
		if err := json.Unmarshal(b, &sec); err != nil || sec.Kind != "Secret" || sec.Type != k8scorev1.SecretTypeTLS || len(sec.Data["tls.crt"]) == 0 {
			t.Fatalf("%s: not a Kubernetes TLS Secret: %s", what, b)
		}
		if _, ok := sec.Annotations[lastApplied]; !ok {
			t.Fatalf("%s: last-applied annotation dropped: %s", what, b)
		}
	}
	check("create", b)
	_, b = do(t, srv, http.MethodGet, CorePath+"/namespaces/default/secrets/site", "")
	check("get", b)

	// The second apply patches; the stored key is kept.
	patch := `{"metadata":{"labels":{"app":"site"}},"data":{"tls.crt":"` + strings.Trim(mustJSON(crt), `"`) + `","tls.key":"` + strings.Trim(string(keyB64), `"`) + `"}}`
	code, b = doCT(t, srv, http.MethodPatch, CorePath+"/namespaces/default/secrets/site", "application/strategic-merge-patch+json", patch)
	if code != http.StatusOK || !strings.Contains(string(b), `"app":"site"`) {
		t.Fatalf("patch: %d %s", code, b)
	}
	check("patch", b)
	stored, err := secret.New(reg.Store(), nil).Get(context.Background(), "default", "site")
	if err != nil || string(stored.Data["tls.key"]) != string(key) {
		t.Fatalf("stored key lost: %v", err)
	}
	if ann := stored.Metadata.Annotations[lastApplied]; strings.Contains(ann, `"data"`) || strings.Contains(ann, "PRIVATE") {
		t.Fatalf("stored last-applied annotation keeps key material: %s", ann)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestOpaqueSecrets(t *testing.T) {
	srv, reg := newServer(t)
	code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets",
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"type":"Opaque","stringData":{"password":"hunter2"}}`)
	if code != http.StatusCreated || strings.Contains(string(b), "hunter2") || strings.Contains(string(b), mustJSON([]byte("hunter2"))) {
		t.Fatalf("create: %d %s", code, b)
	}
	var sec k8scorev1.Secret
	if err := json.Unmarshal(b, &sec); err != nil || sec.Type != k8scorev1.SecretTypeOpaque {
		t.Fatalf("create answer: %s", b)
	}
	if v, ok := sec.Data["password"]; !ok || len(v) != 0 {
		t.Fatalf("opaque keys are shown, values never: %s", b)
	}
	stored, err := secret.New(reg.Store(), nil).Get(context.Background(), "default", "db")
	if err != nil || string(stored.Data["password"]) != "hunter2" {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	code, b = do(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets",
		`{"metadata":{"name":"bad"},"type":"Opaque","stringData":{"bad key":"x"}}`)
	st := decodeStatus(t, b)
	if code != http.StatusUnprocessableEntity || st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "data[bad key]" {
		t.Fatalf("invalid key: %d %s", code, b)
	}
}

// TestProtobufClient drives the core kinds with client-go's typed client,
// which sends protobuf bodies and accepts protobuf answers.
func TestProtobufClient(t *testing.T) {
	srv, reg := newServer(t)
	cfg := &rest.Config{Host: srv.URL, BearerToken: token, ContentConfig: rest.ContentConfig{
		ContentType: mediaProtobuf, AcceptContentTypes: mediaProtobuf + "," + mediaJSON}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &k8scorev1.Namespace{ObjectMeta: k8smeta.ObjectMeta{Name: "proto"}}, k8smeta.CreateOptions{})
	if err != nil || ns.Name != "proto" || ns.Status.Phase != k8scorev1.NamespaceActive {
		t.Fatalf("create namespace: %+v %v", ns, err)
	}
	if _, err := reg.Store().Get(ctx, store.NamespaceKey("proto")); err != nil {
		t.Fatalf("namespace not stored: %v", err)
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &k8scorev1.Namespace{ObjectMeta: k8smeta.ObjectMeta{Name: "proto"}}, k8smeta.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("duplicate namespace: %v", err)
	}
	if _, err := cs.CoreV1().ServiceAccounts("proto").Get(ctx, "default", k8smeta.GetOptions{}); err != nil {
		t.Fatalf("default service account: %v", err)
	}

	crt, key := tlsPair(t)
	sec, err := cs.CoreV1().Secrets("proto").Create(ctx, &k8scorev1.Secret{ObjectMeta: k8smeta.ObjectMeta{Name: "cert"},
		Type: k8scorev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}, k8smeta.CreateOptions{})
	if err != nil || string(sec.Data["tls.crt"]) != string(crt) {
		t.Fatalf("create secret: %v", err)
	}
	if _, ok := sec.Data["tls.key"]; ok {
		t.Fatal("private key returned")
	}
	got, err := cs.CoreV1().Secrets("proto").Get(ctx, "cert", k8smeta.GetOptions{})
	if _, ok := got.Data["tls.key"]; err != nil || ok {
		t.Fatalf("get secret: %v (private key returned: %v)", err, ok)
	}
	stored, err := secret.New(reg.Store(), nil).Get(ctx, "proto", "cert")
	if err != nil || string(stored.Data["tls.key"]) != string(key) {
		t.Fatalf("stored secret: %v", err)
	}

	cm, err := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-network", k8smeta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"http-protocol": "redirected"}
	if _, err := cs.CoreV1().ConfigMaps("knative-serving").Update(ctx, cm, k8smeta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if stored, _ := storedConfig(t, reg, "network"); stored["http-protocol"] != "redirected" {
		t.Fatalf("config not written: %v", stored)
	}
	if _, err := cs.CoreV1().Events("proto").List(ctx, k8smeta.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("events: %v", err)
	}
	if pods, err := cs.CoreV1().Pods("proto").List(ctx, k8smeta.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods: %v, %v", pods, err)
	}

	// A protobuf body, as client-go encodes it, decodes.
	var pb strings.Builder
	if err := coreProto.Encode(&k8scorev1.Namespace{TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: k8smeta.ObjectMeta{Name: "raw-proto"}}, &pb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pb.String(), "k8s\x00") {
		t.Fatalf("not a protobuf envelope: %q", pb.String()[:8])
	}
	if code, b := doCT(t, srv, http.MethodPost, CorePath+"/namespaces", mediaProtobuf, pb.String()); code != http.StatusCreated {
		t.Fatalf("protobuf create: %d %s", code, b)
	}

	// The answer is protobuf when the client asks for it first.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+CorePath+"/namespaces/proto", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", mediaProtobuf+","+mediaJSON)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != mediaProtobuf {
		t.Fatalf("Content-Type %q, want protobuf", ct)
	}

	if err := cs.CoreV1().Namespaces().Delete(ctx, "proto", k8smeta.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("proto").Get(ctx, "cert", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("secret after namespace delete: %v", err)
	}
}
