package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	k8scorev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kiln-serving/kiln/internal/store"
)

const userCMs = CorePath + "/namespaces/dev/configmaps"

func createConfigMap(t *testing.T, srv *httptest.Server, path, body string) k8scorev1.ConfigMap {
	t.Helper()
	code, b := do(t, srv, http.MethodPost, path, body)
	var cm k8scorev1.ConfigMap
	if err := json.Unmarshal(b, &cm); code != http.StatusCreated || err != nil {
		t.Fatalf("create %s: %d %s", body, code, b)
	}
	return cm
}

func listConfigMaps(t *testing.T, srv *httptest.Server, path string) []string {
	t.Helper()
	code, b := do(t, srv, http.MethodGet, path, "")
	var l k8scorev1.ConfigMapList
	if err := json.Unmarshal(b, &l); code != http.StatusOK || err != nil || l.Kind != "ConfigMapList" || l.ResourceVersion == "" {
		t.Fatalf("list %s: %d %s", path, code, b)
	}
	var names []string
	for _, cm := range l.Items {
		names = append(names, cm.Namespace+"/"+cm.Name)
	}
	return names
}

func TestUserConfigMapCRUD(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()

	cm := createConfigMap(t, srv, userCMs, `{"metadata":{"name":"test-cm","labels":{"app":"a"}},"data":{"k":"v"}}`)
	if cm.Namespace != "dev" || cm.UID == "" || cm.CreationTimestamp.IsZero() || cm.Kind != "ConfigMap" || cm.APIVersion != "v1" {
		t.Fatalf("created: %+v", cm)
	}
	kv, err := reg.Store().Get(ctx, store.ConfigMapKey("dev", "test-cm"))
	if err != nil || cm.ResourceVersion != itoa(kv.ModRevision) {
		t.Fatalf("stored record %v, resourceVersion %s", err, cm.ResourceVersion)
	}
	if got := getConfigMap(t, srv, userCMs+"/test-cm"); got.Data["k"] != "v" || got.UID != cm.UID || got.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("get: %+v", got)
	}
	code, b := do(t, srv, http.MethodPost, userCMs, `{"metadata":{"name":"test-cm"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonAlreadyExists, `configmaps "test-cm" already exists`)

	// generateName, dry run, and other namespaces.
	gen := createConfigMap(t, srv, userCMs, `{"metadata":{"generateName":"gen-"}}`)
	if !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) != len("gen-")+5 {
		t.Fatalf("generated name %q", gen.Name)
	}
	dry := createConfigMap(t, srv, userCMs+"?dryRun=All", `{"metadata":{"name":"dry"},"data":{"a":"b"}}`)
	if dry.Name != "dry" || dry.UID == "" {
		t.Fatalf("dry run answer: %+v", dry)
	}
	if _, err := reg.Store().Get(ctx, store.ConfigMapKey("dev", "dry")); err == nil {
		t.Fatal("dry-run create was stored")
	}
	createConfigMap(t, srv, CorePath+"/namespaces/prod/configmaps", `{"metadata":{"name":"test-cm"}}`)
	createConfigMap(t, srv, CorePath+"/namespaces/knative-serving/configmaps", `{"metadata":{"name":"app-settings"}}`)

	// Lists: one namespace, every namespace (with kiln's config-* ones),
	// label and field selectors.
	for _, tc := range []struct {
		path string
		want []string
	}{
		{userCMs, []string{"dev/" + gen.Name, "dev/test-cm"}},
		{userCMs + "?labelSelector=app%3Da", []string{"dev/test-cm"}},
		{CorePath + "/configmaps?fieldSelector=metadata.name%3Dtest-cm", []string{"dev/test-cm", "prod/test-cm"}},
		{CorePath + "/configmaps?fieldSelector=metadata.namespace%3Dknative-serving,metadata.name%3Dapp-settings", []string{"knative-serving/app-settings"}},
	} {
		if got := listConfigMaps(t, srv, tc.path); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v, want %v", tc.path, got, tc.want)
		}
	}
	all := listConfigMaps(t, srv, CorePath+"/namespaces/knative-serving/configmaps")
	if len(all) < 2 || all[0] != "knative-serving/app-settings" || all[1] != "knative-serving/config-autoscaler" {
		t.Fatalf("knative-serving holds both kinds: %v", all)
	}

	// PUT is a compare-and-swap on resourceVersion; uid and creation time
	// stay the server's.
	cm.Data = map[string]string{"k": "v2"}
	body, _ := json.Marshal(cm)
	code, b = do(t, srv, http.MethodPut, userCMs+"/test-cm", string(body))
	var upd k8scorev1.ConfigMap
	if err := json.Unmarshal(b, &upd); code != http.StatusOK || err != nil || upd.Data["k"] != "v2" || upd.UID != cm.UID || upd.ResourceVersion == cm.ResourceVersion {
		t.Fatalf("put: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodPut, userCMs+"/test-cm", string(body))
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict,
		`Operation cannot be fulfilled on configmaps "test-cm": the object has been modified; please apply your changes to the latest version and try again`)
	code, b = do(t, srv, http.MethodPut, userCMs+"/absent", `{"metadata":{"name":"absent"}}`)
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `configmaps "absent" not found`)

	// DELETE answers Success, then the ConfigMap is gone.
	code, b = do(t, srv, http.MethodDelete, userCMs+"/test-cm", "")
	if st := k8sStatus(t, b); code != http.StatusOK || st.Status != k8smeta.StatusSuccess {
		t.Fatalf("delete: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodGet, userCMs+"/test-cm", "")
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `configmaps "test-cm" not found`)
	code, b = do(t, srv, http.MethodDelete, userCMs+"/test-cm", "")
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `configmaps "test-cm" not found`)
	if got := listConfigMaps(t, srv, CorePath+"/namespaces/prod/configmaps"); len(got) != 1 {
		t.Fatalf("other namespace touched: %v", got)
	}

	// deletecollection removes the matching users' ConfigMaps and leaves
	// kiln's configs, which always exist.
	createConfigMap(t, srv, CorePath+"/namespaces/knative-serving/configmaps", `{"metadata":{"name":"keep","labels":{"k":"1"}}}`)
	code, b = do(t, srv, http.MethodDelete, CorePath+"/namespaces/knative-serving/configmaps?labelSelector=!k", "")
	var gone k8scorev1.ConfigMapList
	if err := json.Unmarshal(b, &gone); code != http.StatusOK || err != nil || len(gone.Items) != 1 || gone.Items[0].Name != "app-settings" {
		t.Fatalf("deletecollection: %d %s", code, b)
	}
	left := listConfigMaps(t, srv, CorePath+"/namespaces/knative-serving/configmaps")
	if left[0] != "knative-serving/config-autoscaler" || left[len(left)-1] != "knative-serving/keep" {
		t.Fatalf("left after deletecollection: %v", left)
	}
}

func TestUserConfigMapPatch(t *testing.T) {
	srv, _ := newServer(t)
	createConfigMap(t, srv, userCMs, `{"metadata":{"name":"p"},"data":{"a":"1"}}`)
	for _, tc := range []struct {
		name, ctype, patch, key, want string
	}{
		{"strategic", "application/strategic-merge-patch+json", `{"data":{"b":"2"}}`, "b", "2"},
		{"merge", "application/merge-patch+json", `{"data":{"c":"3"}}`, "c", "3"},
		{"json", "application/json-patch+json", `[{"op":"replace","path":"/data/a","value":"one"}]`, "a", "one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, b := doCT(t, srv, http.MethodPatch, userCMs+"/p", tc.ctype, tc.patch); code != http.StatusOK {
				t.Fatalf("patch: %d %s", code, b)
			}
			if got := getConfigMap(t, srv, userCMs+"/p"); got.Data[tc.key] != tc.want {
				t.Fatalf("after %s patch: %v", tc.name, got.Data)
			}
		})
	}
	if got := getConfigMap(t, srv, userCMs+"/p"); len(got.Data) != 3 {
		t.Fatalf("patches must merge: %v", got.Data)
	}
	code, b := doCT(t, srv, http.MethodPatch, userCMs+"/p?dryRun=All", "application/merge-patch+json", `{"data":{"d":"4"}}`)
	if code != http.StatusOK || !strings.Contains(string(b), `"d":"4"`) {
		t.Fatalf("dry-run patch: %d %s", code, b)
	}
	if got := getConfigMap(t, srv, userCMs+"/p"); got.Data["d"] != "" {
		t.Fatalf("dry-run patch was stored: %v", got.Data)
	}
	code, b = doCT(t, srv, http.MethodPatch, userCMs+"/p", "application/merge-patch+json", `{"metadata":{"resourceVersion":"1"},"data":{"d":"4"}}`)
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict, "")
	code, b = doCT(t, srv, http.MethodPatch, userCMs+"/absent", "application/merge-patch+json", `{"data":{"d":"4"}}`)
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `configmaps "absent" not found`)
}

func TestUserConfigMapValidation(t *testing.T) {
	srv, _ := newServer(t)
	for _, tc := range []struct {
		name, body string
		causes     []string // type field
	}{
		{"name", `{"metadata":{"name":"Bad_Name"}}`, []string{"FieldValueInvalid metadata.name"}},
		{"no name", `{"metadata":{}}`, []string{"FieldValueRequired metadata.name"}},
		{"key", `{"metadata":{"name":"k"},"data":{"bad key":"v"}}`, []string{"FieldValueInvalid data[bad key]"}},
		{"binary key", `{"metadata":{"name":"k"},"binaryData":{"a/b":"dg=="}}`, []string{"FieldValueInvalid binaryData[a/b]"}},
		{"duplicate", `{"metadata":{"name":"k"},"data":{"a":"v"},"binaryData":{"a":"dg=="}}`,
			[]string{"FieldValueInvalid data[a]"}},
		{"label", `{"metadata":{"name":"k","labels":{"a":"not valid!"}}}`, []string{"FieldValueInvalid metadata.labels"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, http.MethodPost, userCMs, tc.body)
			st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
			if st.Details == nil || st.Details.Kind != "ConfigMap" || !strings.HasPrefix(st.Message, "ConfigMap ") {
				t.Fatalf("details: %s", b)
			}
			var got []string
			for _, c := range st.Details.Causes {
				got = append(got, string(c.Type)+" "+c.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.causes, ",") {
				t.Fatalf("causes %q, want %q", got, tc.causes)
			}
		})
	}
	if got := listConfigMaps(t, srv, userCMs); len(got) != 0 {
		t.Fatalf("invalid ConfigMaps stored: %v", got)
	}

	// Values total at most 1 MiB: a request body is smaller than that, so
	// a patch is what grows a ConfigMap past it.
	createConfigMap(t, srv, userCMs, `{"metadata":{"name":"big"},"data":{"a":"`+strings.Repeat("x", 900<<10)+`"}}`)
	code, b := doCT(t, srv, http.MethodPatch, userCMs+"/big", "application/merge-patch+json", `{"data":{"b":"`+strings.Repeat("y", 200<<10)+`"}}`)
	st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
	if c := st.Details.Causes; len(c) != 1 || c[0].Type != k8smeta.CauseType(field.ErrorTypeTooLong) ||
		!strings.Contains(c[0].Message, "may not be more than 1048576 bytes") {
		t.Fatalf("size causes: %v", c)
	}
}

func TestImmutableConfigMap(t *testing.T) {
	srv, _ := newServer(t)
	createConfigMap(t, srv, userCMs, `{"metadata":{"name":"frozen"},"immutable":true,"data":{"a":"1"}}`)
	const msg = "field is immutable when `immutable` is set"
	for _, tc := range []struct {
		name, patch, field string
	}{
		{"data", `{"data":{"a":"2"}}`, "data"},
		{"binaryData", `{"binaryData":{"b":"dg=="}}`, "binaryData"},
		{"immutable", `{"immutable":false}`, "immutable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := doCT(t, srv, http.MethodPatch, userCMs+"/frozen", "application/merge-patch+json", tc.patch)
			st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid,
				`ConfigMap "frozen" is invalid: `+tc.field+`: Forbidden: `+msg)
			if c := st.Details.Causes; len(c) != 1 || c[0].Type != k8smeta.CauseType(field.ErrorTypeForbidden) || c[0].Field != tc.field {
				t.Fatalf("causes: %s", b)
			}
		})
	}
	// Metadata still changes.
	code, b := doCT(t, srv, http.MethodPatch, userCMs+"/frozen", "application/merge-patch+json", `{"metadata":{"labels":{"x":"y"}}}`)
	if code != http.StatusOK {
		t.Fatalf("label patch: %d %s", code, b)
	}
	if got := getConfigMap(t, srv, userCMs+"/frozen"); got.Data["a"] != "1" || got.Labels["x"] != "y" {
		t.Fatalf("after patches: %+v", got)
	}
}

func TestUserConfigMapWatchAndTable(t *testing.T) {
	srv, _ := newServer(t)
	w := watchLines(t, srv.URL, userCMs+"?watch=true")
	ks := watchLines(t, srv.URL, CorePath+"/namespaces/knative-serving/configmaps?watch=true&labelSelector=app%3Dx")
	createConfigMap(t, srv, CorePath+"/namespaces/other/configmaps", `{"metadata":{"name":"elsewhere"}}`)
	createConfigMap(t, srv, userCMs, `{"metadata":{"name":"w"},"data":{"a":"1"}}`)
	if typ, obj := nextEvent(t, w); typ != "ADDED" || objName(obj) != "w" || obj["kind"] != "ConfigMap" {
		t.Fatalf("event %s %v", typ, obj)
	}
	if code, b := doCT(t, srv, http.MethodPatch, userCMs+"/w", "application/merge-patch+json", `{"data":{"a":"2"}}`); code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	typ, obj := nextEvent(t, w)
	if data, _ := obj["data"].(map[string]any); typ != "MODIFIED" || data["a"] != "2" {
		t.Fatalf("event %s %v", typ, obj)
	}
	if code, b := do(t, srv, http.MethodDelete, userCMs+"/w", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if typ, obj := nextEvent(t, w); typ != "DELETED" || objName(obj) != "w" {
		t.Fatalf("event %s %v", typ, obj)
	}
	// knative-serving's watch sees its users' ConfigMaps beside the configs.
	createConfigMap(t, srv, CorePath+"/namespaces/knative-serving/configmaps", `{"metadata":{"name":"mine","labels":{"app":"x"}}}`)
	if typ, obj := nextEvent(t, ks); typ != "ADDED" || objName(obj) != "mine" {
		t.Fatalf("event %s %v", typ, obj)
	}

	createConfigMap(t, srv, userCMs, `{"metadata":{"name":"tab"},"data":{"a":"1","b":"2"},"binaryData":{"c":"dg=="}}`)
	code, b := send(t, srv, srv.URL, http.MethodGet, userCMs, "", "Accept", tableAccept)
	var tab k8smeta.Table
	if err := json.Unmarshal(b, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 || len(tab.ColumnDefinitions) != 3 {
		t.Fatalf("table: %d %s", code, b)
	}
	if cells := tab.Rows[0].Cells; cells[0] != "tab" || cells[1] != float64(3) {
		t.Fatalf("row %v", cells)
	}
}

func TestUserConfigMapsOverProtobuf(t *testing.T) {
	srv, _ := newServer(t)
	cfg := &rest.Config{Host: srv.URL, BearerToken: token, ContentConfig: rest.ContentConfig{
		ContentType: mediaProtobuf, AcceptContentTypes: mediaProtobuf + "," + mediaJSON}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("proto")
	cm, err := cms.Create(ctx, &k8scorev1.ConfigMap{ObjectMeta: k8smeta.ObjectMeta{Name: "test-cm"},
		Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"bin": {0, 1, 2}}}, k8smeta.CreateOptions{})
	if err != nil || cm.UID == "" || cm.Data["k"] != "v" {
		t.Fatalf("create: %+v %v", cm, err)
	}
	got, err := cms.Get(ctx, "test-cm", k8smeta.GetOptions{})
	if err != nil || string(got.BinaryData["bin"]) != "\x00\x01\x02" {
		t.Fatalf("get: %+v %v", got, err)
	}
	got.Data["k"] = "v2"
	if _, err := cms.Update(ctx, got, k8smeta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, got, k8smeta.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	l, err := cms.List(ctx, k8smeta.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Data["k"] != "v2" {
		t.Fatalf("list: %+v %v", l, err)
	}
	_, err = cms.Create(ctx, &k8scorev1.ConfigMap{ObjectMeta: k8smeta.ObjectMeta{Name: "bad"}, Data: map[string]string{"bad key": ""}}, k8smeta.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid create: %v", err)
	}
	if err := cms.Delete(ctx, "test-cm", k8smeta.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "test-cm", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}
