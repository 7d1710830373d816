package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	k8scorev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kiln-serving/kiln/internal/store"
)

const devPVCs = CorePath + "/namespaces/dev/persistentvolumeclaims"

func pvcBody(name, size string, modes ...string) string {
	m, _ := json.Marshal(modes)
	return `{"metadata":{"name":"` + name + `","labels":{"app":"a"}},"spec":{"accessModes":` + string(m) +
		`,"resources":{"requests":{"storage":"` + size + `"}}}}`
}

func decodePVCBody(t *testing.T, code, want int, b []byte) k8scorev1.PersistentVolumeClaim {
	t.Helper()
	var c k8scorev1.PersistentVolumeClaim
	if err := json.Unmarshal(b, &c); code != want || err != nil {
		t.Fatalf("%d %s (want %d)", code, b, want)
	}
	return c
}

func TestPersistentVolumeClaimCRUD(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()

	code, b := do(t, srv, http.MethodPost, devPVCs, pvcBody("test-pvc", "1Gi", "ReadWriteOnce"))
	c := decodePVCBody(t, code, http.StatusCreated, b)
	if c.Kind != "PersistentVolumeClaim" || c.Namespace != "dev" || c.UID == "" || c.CreationTimestamp.IsZero() {
		t.Fatalf("created: %s", b)
	}
	// kiln binds every claim to its node directory at once.
	if c.Status.Phase != k8scorev1.ClaimBound || len(c.Status.AccessModes) != 1 || c.Status.AccessModes[0] != k8scorev1.ReadWriteOnce ||
		c.Status.Capacity.Storage().String() != "1Gi" || c.Spec.VolumeMode == nil || *c.Spec.VolumeMode != k8scorev1.PersistentVolumeFilesystem {
		t.Fatalf("status and defaults: %s", b)
	}
	kv, err := reg.Store().Get(ctx, store.PersistentVolumeClaimKey("dev", "test-pvc"))
	if err != nil || c.ResourceVersion != itoa(kv.ModRevision) || strings.Contains(string(kv.Value), "resourceVersion") {
		t.Fatalf("stored record %v %s, resourceVersion %s", err, kv.Value, c.ResourceVersion)
	}
	code, b = do(t, srv, http.MethodGet, devPVCs+"/test-pvc", "")
	if got := decodePVCBody(t, code, http.StatusOK, b); got.UID != c.UID || got.ResourceVersion != c.ResourceVersion {
		t.Fatalf("get: %s", b)
	}
	code, b = do(t, srv, http.MethodPost, devPVCs, pvcBody("test-pvc", "1Gi", "ReadWriteOnce"))
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonAlreadyExists, `persistentvolumeclaims "test-pvc" already exists`)

	// generateName and dry run.
	code, b = do(t, srv, http.MethodPost, devPVCs, `{"metadata":{"generateName":"gen-"},"spec":{"accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"10Mi"}}}}`)
	if gen := decodePVCBody(t, code, http.StatusCreated, b); !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) != len("gen-")+5 {
		t.Fatalf("generated name %q", gen.Name)
	}
	code, b = do(t, srv, http.MethodPost, devPVCs+"?dryRun=All", pvcBody("dry", "1Gi", "ReadWriteOnce"))
	if dry := decodePVCBody(t, code, http.StatusCreated, b); dry.Name != "dry" || dry.Status.Phase != k8scorev1.ClaimBound {
		t.Fatalf("dry run: %s", b)
	}
	if _, err := reg.Store().Get(ctx, store.PersistentVolumeClaimKey("dev", "dry")); err == nil {
		t.Fatal("dry-run create was stored")
	}
	code, b = do(t, srv, http.MethodPost, CorePath+"/namespaces/prod/persistentvolumeclaims", pvcBody("test-pvc", "2Gi", "ReadOnlyMany"))
	decodePVCBody(t, code, http.StatusCreated, b)

	// Lists with selectors.
	for _, tc := range []struct{ path, want string }{
		{devPVCs + "?labelSelector=app%3Da", "dev/test-pvc"},
		{CorePath + "/persistentvolumeclaims?fieldSelector=metadata.name%3Dtest-pvc", "dev/test-pvc prod/test-pvc"},
	} {
		code, b := do(t, srv, http.MethodGet, tc.path, "")
		var l k8scorev1.PersistentVolumeClaimList
		if err := json.Unmarshal(b, &l); code != http.StatusOK || err != nil || l.Kind != "PersistentVolumeClaimList" || l.ResourceVersion == "" {
			t.Fatalf("list %s: %d %s", tc.path, code, b)
		}
		var got []string
		for _, c := range l.Items {
			got = append(got, c.Namespace+"/"+c.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.path, got, tc.want)
		}
	}

	// PUT grows the request (capacity follows) and is a compare-and-swap.
	c.Spec.Resources.Requests[k8scorev1.ResourceStorage] = k8sresource.MustParse("2Gi")
	body, _ := json.Marshal(c)
	code, b = do(t, srv, http.MethodPut, devPVCs+"/test-pvc", string(body))
	if upd := decodePVCBody(t, code, http.StatusOK, b); upd.Status.Capacity.Storage().String() != "2Gi" || upd.UID != c.UID {
		t.Fatalf("resize: %s", b)
	}
	code, b = do(t, srv, http.MethodPut, devPVCs+"/test-pvc", string(body))
	wantK8sStatus(t, code, b, http.StatusConflict, k8smeta.StatusReasonConflict,
		`Operation cannot be fulfilled on persistentvolumeclaims "test-pvc": the object has been modified; please apply your changes to the latest version and try again`)

	// Patches of every type.
	for _, tc := range []struct{ ctype, patch string }{
		{"application/strategic-merge-patch+json", `{"metadata":{"labels":{"s":"1"}}}`},
		{"application/merge-patch+json", `{"metadata":{"labels":{"m":"1"}}}`},
		{"application/json-patch+json", `[{"op":"add","path":"/metadata/labels/j","value":"1"}]`},
	} {
		if code, b := doCT(t, srv, http.MethodPatch, devPVCs+"/test-pvc", tc.ctype, tc.patch); code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.ctype, code, b)
		}
	}
	code, b = do(t, srv, http.MethodGet, devPVCs+"/test-pvc", "")
	if got := decodePVCBody(t, code, http.StatusOK, b); len(got.Labels) != 4 {
		t.Fatalf("patches must merge: %v", got.Labels)
	}

	// DELETE, then deletecollection by label.
	code, b = do(t, srv, http.MethodDelete, devPVCs+"/test-pvc", "")
	if st := k8sStatus(t, b); code != http.StatusOK || st.Status != k8smeta.StatusSuccess {
		t.Fatalf("delete: %d %s", code, b)
	}
	code, b = do(t, srv, http.MethodGet, devPVCs+"/test-pvc", "")
	wantK8sStatus(t, code, b, http.StatusNotFound, k8smeta.StatusReasonNotFound, `persistentvolumeclaims "test-pvc" not found`)
	code, b = do(t, srv, http.MethodDelete, devPVCs, "")
	var gone k8scorev1.PersistentVolumeClaimList
	if err := json.Unmarshal(b, &gone); code != http.StatusOK || err != nil || len(gone.Items) != 1 || !strings.HasPrefix(gone.Items[0].Name, "gen-") {
		t.Fatalf("deletecollection: %d %s", code, b)
	}
	if _, err := reg.Store().Get(ctx, store.PersistentVolumeClaimKey("prod", "test-pvc")); err != nil {
		t.Fatalf("other namespace touched: %v", err)
	}
}

func TestPersistentVolumeClaimValidation(t *testing.T) {
	srv, _ := newServer(t)
	for _, tc := range []struct {
		name, body string
		causes     []string // type field
	}{
		{"name", pvcBody("Bad_Name", "1Gi", "ReadWriteOnce"), []string{"FieldValueInvalid metadata.name"}},
		{"no access modes", pvcBody("a", "1Gi"), []string{"FieldValueRequired spec.accessModes"}},
		{"unknown access mode", pvcBody("a", "1Gi", "ReadSometimes"), []string{"FieldValueNotSupported spec.accessModes"}},
		{"ReadWriteOncePod with an unknown mode", pvcBody("a", "1Gi", "ReadWriteOncePod", "ReadSometimes"), []string{"FieldValueNotSupported spec.accessModes"}},
		{"ReadWriteOncePod with others", pvcBody("a", "1Gi", "ReadWriteOncePod", "ReadWriteOnce"), []string{"FieldValueForbidden spec.accessModes"}},
		{"no storage", `{"metadata":{"name":"a"},"spec":{"accessModes":["ReadWriteOnce"]}}`, []string{"FieldValueRequired spec.resources[storage]"}},
		{"several", pvcBody("a", "0", "ReadSometimes"), []string{"FieldValueNotSupported spec.accessModes", "FieldValueInvalid spec.resources[storage]"}},
		{"zero storage", pvcBody("a", "0", "ReadWriteOnce"), []string{"FieldValueInvalid spec.resources[storage]"}},
		{"volume mode", `{"metadata":{"name":"a"},"spec":{"accessModes":["ReadWriteOnce"],"volumeMode":"Tape","resources":{"requests":{"storage":"1Gi"}}}}`,
			[]string{"FieldValueNotSupported spec.volumeMode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, http.MethodPost, devPVCs, tc.body)
			st := wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, "")
			if st.Details == nil || st.Details.Kind != "PersistentVolumeClaim" || !strings.HasPrefix(st.Message, "PersistentVolumeClaim ") {
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

	code, b := do(t, srv, http.MethodPost, devPVCs, pvcBody("a", "1Gi", "ReadSometimes"))
	wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid,
		`PersistentVolumeClaim "a" is invalid: spec.accessModes: Unsupported value: "ReadSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`)

	// The spec is immutable except a growing storage request.
	code, b = do(t, srv, http.MethodPost, devPVCs, pvcBody("fixed", "1Gi", "ReadWriteOnce"))
	decodePVCBody(t, code, http.StatusCreated, b)
	for _, tc := range []struct{ name, patch, msg string }{
		{"access modes", `{"spec":{"accessModes":["ReadWriteMany"]}}`,
			`PersistentVolumeClaim "fixed" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims`},
		{"shrink", `{"spec":{"resources":{"requests":{"storage":"512Mi"}}}}`,
			`PersistentVolumeClaim "fixed" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := doCT(t, srv, http.MethodPatch, devPVCs+"/fixed", "application/merge-patch+json", tc.patch)
			wantK8sStatus(t, code, b, http.StatusUnprocessableEntity, k8smeta.StatusReasonInvalid, tc.msg)
		})
	}
}

func TestPersistentVolumeClaimWatchAndTable(t *testing.T) {
	srv, _ := newServer(t)
	w := watchLines(t, srv.URL, devPVCs+"?watch=true")
	code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces/other/persistentvolumeclaims", pvcBody("elsewhere", "1Gi", "ReadWriteOnce"))
	decodePVCBody(t, code, http.StatusCreated, b)
	code, b = do(t, srv, http.MethodPost, devPVCs, pvcBody("w", "1Gi", "ReadWriteOnce"))
	decodePVCBody(t, code, http.StatusCreated, b)
	if typ, obj := nextEvent(t, w); typ != "ADDED" || objName(obj) != "w" || obj["kind"] != "PersistentVolumeClaim" {
		t.Fatalf("event %s %v", typ, obj)
	}
	if code, b := doCT(t, srv, http.MethodPatch, devPVCs+"/w", "application/merge-patch+json", `{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}`); code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	if typ, obj := nextEvent(t, w); typ != "MODIFIED" || !strings.Contains(string(jsonOf(t, obj)), `"capacity":{"storage":"3Gi"}`) {
		t.Fatalf("event %s %v", typ, obj)
	}
	if code, b := do(t, srv, http.MethodDelete, devPVCs+"/w", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if typ, obj := nextEvent(t, w); typ != "DELETED" || objName(obj) != "w" {
		t.Fatalf("event %s %v", typ, obj)
	}

	code, b = do(t, srv, http.MethodPost, devPVCs, pvcBody("tab", "5Gi", "ReadWriteMany", "ReadWriteOnce"))
	decodePVCBody(t, code, http.StatusCreated, b)
	code, b = send(t, srv, srv.URL, http.MethodGet, devPVCs, "", "Accept", tableAccept)
	var tab k8smeta.Table
	if err := json.Unmarshal(b, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 {
		t.Fatalf("table: %d %s", code, b)
	}
	var names []string
	for _, c := range tab.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "Name,Status,Volume,Capacity,Access Modes,StorageClass,VolumeAttributesClass,Age,VolumeMode" {
		t.Fatalf("columns %s", got)
	}
	if got, _ := json.Marshal(tab.Rows[0].Cells[:7]); string(got) != `["tab","Bound","","5Gi","RWO,RWX","","\u003cunset\u003e"]` {
		t.Fatalf("row %s", got)
	}
	if tab.Rows[0].Cells[8] != "Filesystem" || tab.ColumnDefinitions[8].Priority != 1 {
		t.Fatalf("VolumeMode column: %v %v", tab.Rows[0].Cells, tab.ColumnDefinitions[8])
	}
}

func TestPersistentVolumeClaimsOverProtobuf(t *testing.T) {
	srv, _ := newServer(t)
	cfg := &rest.Config{Host: srv.URL, BearerToken: token, ContentConfig: rest.ContentConfig{
		ContentType: mediaProtobuf, AcceptContentTypes: mediaProtobuf + "," + mediaJSON}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	claims := cs.CoreV1().PersistentVolumeClaims("proto")
	c, err := claims.Create(ctx, &k8scorev1.PersistentVolumeClaim{ObjectMeta: k8smeta.ObjectMeta{Name: "test-pvc"},
		Spec: k8scorev1.PersistentVolumeClaimSpec{AccessModes: []k8scorev1.PersistentVolumeAccessMode{k8scorev1.ReadWriteOnce},
			Resources: k8scorev1.VolumeResourceRequirements{Requests: k8scorev1.ResourceList{k8scorev1.ResourceStorage: k8sresource.MustParse("1Gi")}}}},
		k8smeta.CreateOptions{})
	if err != nil || c.UID == "" || c.Status.Phase != k8scorev1.ClaimBound {
		t.Fatalf("create: %+v %v", c, err)
	}
	c.Spec.Resources.Requests[k8scorev1.ResourceStorage] = k8sresource.MustParse("4Gi")
	upd, err := claims.Update(ctx, c, k8smeta.UpdateOptions{})
	if err != nil || upd.Status.Capacity.Storage().Cmp(k8sresource.MustParse("4Gi")) != 0 {
		t.Fatalf("update: %+v %v", upd, err)
	}
	if _, err := claims.Update(ctx, c, k8smeta.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	l, err := claims.List(ctx, k8smeta.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "test-pvc" {
		t.Fatalf("list: %+v %v", l, err)
	}
	_, err = claims.Create(ctx, &k8scorev1.PersistentVolumeClaim{ObjectMeta: k8smeta.ObjectMeta{Name: "bad"}}, k8smeta.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid create: %v", err)
	}
	if err := claims.Delete(ctx, "test-pvc", k8smeta.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := claims.Get(ctx, "test-pvc", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
