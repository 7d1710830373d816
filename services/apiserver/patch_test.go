package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

func servicesResource(t *testing.T) apiResource {
	t.Helper()
	a, ok := findAPIResource(servingGroup, "v1", "services")
	if !ok {
		t.Fatal("services.serving.knative.dev/v1 is not served")
	}
	return a
}

// ksvcJSON is a Service as a client sends it, with one container and env value.
func ksvcJSON(env string) string {
	return `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"default"},` +
		`"spec":{"template":{"spec":{"containers":[{"image":"ghcr.io/knative/helloworld-go:latest",` +
		`"env":[{"name":"TARGET","value":"` + env + `"}]}]}}}}`
}

// stored turns a written object into what the store holds: server-set
// metadata and a status the controller wrote.
func stored(t *testing.T, obj []byte) []byte {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatal(err)
	}
	md := m["metadata"].(map[string]any)
	md["uid"] = "0b4c7c3e-1111-4222-8333-444455556666"
	md["resourceVersion"] = "42"
	md["generation"] = float64(1)
	md["creationTimestamp"] = "2026-12-07T15:00:00Z"
	m["status"] = map[string]any{"observedGeneration": float64(1), "url": "http://hello.default.example.com"}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// csaLive is a Service created by kubectl's client-side apply, as stored.
func csaLive(t *testing.T, env string) []byte {
	t.Helper()
	obj, err := updateManagedFields(servicesResource(t), nil, []byte(ksvcJSON(env)), "kubectl-client-side-apply", "Update")
	if err != nil {
		t.Fatalf("updateManagedFields: %v", err)
	}
	return stored(t, obj)
}

type testObject struct {
	Metadata struct {
		Name              string                      `json:"name"`
		UID               string                      `json:"uid"`
		ResourceVersion   string                      `json:"resourceVersion"`
		Generation        int64                       `json:"generation"`
		CreationTimestamp string                      `json:"creationTimestamp"`
		ManagedFields     []metav1.ManagedFieldsEntry `json:"managedFields"`
		Labels            map[string]string           `json:"labels"`
		Annotations       map[string]string           `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Image string `json:"image"`
					Env   []struct {
						Name  string `json:"name"`
						Value string `json:"value"`
					} `json:"env"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Status map[string]any `json:"status"`
}

func decodeTestObject(t *testing.T, b []byte) testObject {
	t.Helper()
	var o testObject
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return o
}

func (o testObject) env() string {
	c := o.Spec.Template.Spec.Containers
	if len(c) == 0 || len(c[0].Env) == 0 {
		return ""
	}
	return c[0].Env[0].Value
}

// managers lists "manager/operation" of each managedFields entry.
func (o testObject) managers() []string {
	var out []string
	for _, e := range o.Metadata.ManagedFields {
		out = append(out, e.Manager+"/"+string(e.Operation))
	}
	return out
}

// fields lists "manager/operation fieldsV1" of each managedFields entry.
func (o testObject) fields() []string {
	var out []string
	for _, e := range o.Metadata.ManagedFields {
		out = append(out, e.Manager+"/"+string(e.Operation)+" "+string(e.FieldsV1.Raw))
	}
	return out
}

func (o testObject) entry(manager string) (metav1.ManagedFieldsEntry, bool) {
	for _, e := range o.Metadata.ManagedFields {
		if e.Manager == manager {
			return e, true
		}
	}
	return metav1.ManagedFieldsEntry{}, false
}

func ownsContainers(e metav1.ManagedFieldsEntry) bool {
	return e.FieldsV1 != nil && strings.Contains(string(e.FieldsV1.Raw), `"f:containers":{}`)
}

func statusOf(t *testing.T, err error) metav1.Status {
	t.Helper()
	var se apierrors.APIStatus
	if err == nil {
		t.Fatal("want an error, got none")
	}
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a Status error", err, err)
	}
	return se.Status()
}

func TestPatchUnsupportedMediaType(t *testing.T) {
	const msg = "the body of the request was in an unknown format - accepted media types include: " +
		"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
	live := csaLive(t, "v1")
	for _, ct := range []string{
		"application/strategic-merge-patch+json",
		"application/json",
		"text/plain",
		"",
		"application/apply-patch+cbor",
	} {
		t.Run(ct, func(t *testing.T) {
			_, err := patchObject(servicesResource(t), live, ct, []byte(`{}`), "kubectl-patch", false)
			st := statusOf(t, err)
			if st.Code != http.StatusUnsupportedMediaType || st.Reason != metav1.StatusReasonUnsupportedMediaType || st.Message != msg {
				t.Errorf("got %d %s %q, want 415 UnsupportedMediaType %q", st.Code, st.Reason, st.Message, msg)
			}
		})
	}
}

func TestPatchJSONAndMerge(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		patch       string
		wantEnv     string
		wantLabel   string
	}{
		{"merge patch", "application/merge-patch+json",
			`{"metadata":{"labels":{"team":"a"}}}`, "v1", "a"},
		{"merge patch with charset", "application/merge-patch+json; charset=utf-8",
			`{"metadata":{"labels":{"team":"b"}}}`, "v1", "b"},
		{"merge patch replaces a list", "application/merge-patch+json",
			`{"spec":{"template":{"spec":{"containers":[{"image":"x","env":[{"name":"TARGET","value":"v2"}]}]}}}}`, "v2", ""},
		{"json patch", "application/json-patch+json",
			`[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"v3"}]`, "v3", ""},
		{"json patch test and add", "application/json-patch+json",
			`[{"op":"test","path":"/metadata/name","value":"hello"},{"op":"add","path":"/metadata/labels","value":{"team":"c"}}]`, "v1", "c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			live := csaLive(t, "v1")
			out, err := patchObject(servicesResource(t), live, tc.contentType, []byte(tc.patch), "kubectl-patch", false)
			if err != nil {
				t.Fatalf("patchObject: %v", err)
			}
			o := decodeTestObject(t, out)
			if o.env() != tc.wantEnv || o.Metadata.Labels["team"] != tc.wantLabel {
				t.Errorf("env %q label %q, want %q %q", o.env(), o.Metadata.Labels["team"], tc.wantEnv, tc.wantLabel)
			}
			if got, want := strings.Join(o.managers(), ","), "kubectl-client-side-apply/Update,kubectl-patch/Update"; got != want {
				t.Errorf("managers %s, want %s", got, want)
			}
			e, _ := o.entry("kubectl-patch")
			if e.APIVersion != "serving.knative.dev/v1" || e.FieldsType != "FieldsV1" || e.Time == nil {
				t.Errorf("entry %+v lacks apiVersion, fieldsType or time", e)
			}
			// What the patch changed moves to its manager; the rest stays.
			csa, _ := o.entry("kubectl-client-side-apply")
			if changedList := tc.wantEnv != "v1"; ownsContainers(e) != changedList || ownsContainers(csa) == changedList {
				t.Errorf("containers owned by patch=%v, client-side apply=%v after %s", ownsContainers(e), ownsContainers(csa), tc.patch)
			}
		})
	}
}

func TestPatchErrors(t *testing.T) {
	// kube-apiserver's answer to a JSON patch that does not apply: a generic
	// 422 without causes (NewGenericServerResponse drops the reason), which
	// kubectl prints as is.
	const rejected = "the server rejected our request due to an error in our request"
	tests := []struct {
		name        string
		contentType string
		patch       string
		manager     string
		missing     bool
		wantCode    int32
		wantReason  metav1.StatusReason
		wantMessage string
	}{
		{"json patch not json", "application/json-patch+json", `[{"op":`, "m", false,
			400, metav1.StatusReasonBadRequest, "invalid JSON patch"},
		{"json patch not a list", "application/json-patch+json", `{"op":"add"}`, "m", false,
			400, metav1.StatusReasonBadRequest, "error decoding patch: json: cannot unmarshal object into Go value of type []apiserver.jsonPatchOp"},
		{"json patch path missing", "application/json-patch+json", `[{"op":"replace","path":"/spec/nope/x","value":1}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"json patch test fails", "application/json-patch+json", `[{"op":"test","path":"/metadata/name","value":"other"}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"json patch unknown op", "application/json-patch+json", `[{"op":"frobnicate","path":"/spec"}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"merge patch not json", "application/merge-patch+json", `{"spec":`, "m", false,
			400, metav1.StatusReasonBadRequest, "invalid JSON patch"},
		{"merge patch not an object", "application/merge-patch+json", `[1]`, "m", false,
			400, metav1.StatusReasonBadRequest, "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"},
		{"merge patch null", "application/merge-patch+json", `null`, "m", false,
			400, metav1.StatusReasonBadRequest, "Invalid JSON Patch"},
		{"merge patch on a missing object", "application/merge-patch+json", `{}`, "m", true,
			404, metav1.StatusReasonNotFound, `services.serving.knative.dev "" not found`},
		{"rename", "application/merge-patch+json", `{"metadata":{"name":"other"}}`, "m", false,
			400, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (hello)"},
		{"change kind", "application/merge-patch+json", `{"kind":"Route"}`, "m", false,
			422, metav1.StatusReasonInvalid, `Route.serving.knative.dev "hello" is invalid: kind: Invalid value: "Route": must be Service`},
		{"change apiVersion", "application/merge-patch+json", `{"apiVersion":"serving.knative.dev/v2"}`, "m", false,
			422, metav1.StatusReasonInvalid, `Service.serving.knative.dev "hello" is invalid: apiVersion: Invalid value: "serving.knative.dev/v2": must be serving.knative.dev/v1`},
		{"change uid", "application/merge-patch+json", `{"metadata":{"uid":"x"}}`, "m", false,
			422, metav1.StatusReasonInvalid, `Service.serving.knative.dev "hello" is invalid: metadata.uid: Invalid value: "x": field is immutable`},
		{"stale resourceVersion", "application/merge-patch+json", `{"metadata":{"resourceVersion":"41"}}`, "m", false,
			409, metav1.StatusReasonConflict, `Operation cannot be fulfilled on services.serving.knative.dev "hello": the object has been modified; please apply your changes to the latest version and try again`},
		{"apply without field manager", "application/apply-patch+yaml", ksvcJSON("v1"), "", false,
			422, metav1.StatusReasonInvalid, `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`},
		{"apply not yaml", "application/apply-patch+yaml", "spec: [x\n", "m", false,
			400, metav1.StatusReasonBadRequest, "error encoding patch: yaml: line 1: did not find expected ',' or ']'"},
		{"apply another kind", "application/apply-patch+yaml", "apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata:\n  name: hello\n", "m", false,
			400, metav1.StatusReasonBadRequest, "invalid object type: serving.knative.dev/v1, Kind=Route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var live []byte
			if !tc.missing {
				live = csaLive(t, "v1")
			}
			_, err := patchObject(servicesResource(t), live, tc.contentType, []byte(tc.patch), tc.manager, false)
			st := statusOf(t, err)
			msg := st.Message
			if st.Code != tc.wantCode || st.Reason != tc.wantReason || msg != tc.wantMessage {
				t.Errorf("got %d %q %q\nwant %d %q %q", st.Code, st.Reason, msg, tc.wantCode, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

func TestPatchKeepsServerFields(t *testing.T) {
	live := csaLive(t, "v1")
	patch := `{"status":{"url":"http://evil"},"metadata":{"generation":7,"creationTimestamp":"2000-01-01T00:00:00Z","resourceVersion":"42","labels":{"a":"b"}}}`
	out, err := patchObject(servicesResource(t), live, "application/merge-patch+json", []byte(patch), "m", false)
	if err != nil {
		t.Fatal(err)
	}
	o := decodeTestObject(t, out)
	if o.Status["url"] != "http://hello.default.example.com" || o.Metadata.Generation != 1 ||
		o.Metadata.CreationTimestamp != "2026-12-07T15:00:00Z" || o.Metadata.ResourceVersion != "42" ||
		o.Metadata.UID != "0b4c7c3e-1111-4222-8333-444455556666" || o.Metadata.Labels["a"] != "b" {
		t.Errorf("server fields or label not as expected: %s", out)
	}
}

func TestApply(t *testing.T) {
	a := servicesResource(t)

	t.Run("creates a missing object", func(t *testing.T) {
		body := "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\n  namespace: default\n  uid: x\n" +
			"spec:\n  template:\n    spec:\n      containers:\n      - image: img\n        env:\n        - name: TARGET\n          value: v1\n" +
			"status:\n  url: http://x\n"
		out, err := patchObject(a, nil, "application/apply-patch+yaml", []byte(body), "bars", false)
		if err != nil {
			t.Fatal(err)
		}
		o := decodeTestObject(t, out)
		if o.env() != "v1" || o.Metadata.UID != "" || o.Status != nil {
			t.Errorf("created object %s", out)
		}
		e, ok := o.entry("bars")
		if !ok || e.Operation != metav1.ManagedFieldsOperationApply || string(e.FieldsV1.Raw) != `{"f:spec":{"f:template":{"f:spec":{"f:containers":{}}}}}` {
			t.Errorf("managedFields %+v, want bars/Apply owning containers and not status", o.Metadata.ManagedFields)
		}
	})

	t.Run("conflicts with client-side apply", func(t *testing.T) {
		_, err := patchObject(a, csaLive(t, "v1"), "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "bars", false)
		st := statusOf(t, err)
		const want = `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using serving.knative.dev/v1: .spec.template.spec.containers`
		if st.Code != http.StatusConflict || st.Reason != metav1.StatusReasonConflict || st.Message != want {
			t.Errorf("got %d %s %q, want 409 Conflict %q", st.Code, st.Reason, st.Message, want)
		}
		if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != ".spec.template.spec.containers" ||
			st.Details.Causes[0].Type != metav1.CauseTypeFieldManagerConflict {
			t.Errorf("details %+v", st.Details)
		}
	})

	t.Run("same values share ownership", func(t *testing.T) {
		out, err := patchObject(a, csaLive(t, "v1"), "application/apply-patch+yaml", []byte(ksvcJSON("v1")), "bars", false)
		if err != nil {
			t.Fatal(err)
		}
		o := decodeTestObject(t, out)
		csa, _ := o.entry("kubectl-client-side-apply")
		bars, _ := o.entry("bars")
		if !ownsContainers(csa) || !ownsContainers(bars) {
			t.Errorf("managedFields %s", out)
		}
	})

	t.Run("force takes ownership", func(t *testing.T) {
		out, err := patchObject(a, csaLive(t, "v1"), "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "bars", true)
		if err != nil {
			t.Fatal(err)
		}
		o := decodeTestObject(t, out)
		csa, _ := o.entry("kubectl-client-side-apply")
		bars, _ := o.entry("bars")
		if o.env() != "v2" || ownsContainers(csa) || !ownsContainers(bars) || bars.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("after force: env %q, managedFields %s", o.env(), out)
		}
		if o.Metadata.UID == "" || o.Metadata.ResourceVersion != "42" || o.Status["url"] == nil {
			t.Errorf("server fields lost: %s", out)
		}
	})

	t.Run("update then apply then update", func(t *testing.T) {
		live := csaLive(t, "v1")
		out, err := patchObject(a, live, "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "bars", true)
		if err != nil {
			t.Fatal(err)
		}
		// A plain update by another client takes the field it changes.
		changed := strings.Replace(string(out), `"value":"v2"`, `"value":"v3"`, 1)
		out2, err := updateManagedFields(a, out, []byte(changed), "kubectl-edit", "Update")
		if err != nil {
			t.Fatal(err)
		}
		o := decodeTestObject(t, out2)
		edit, _ := o.entry("kubectl-edit")
		bars, _ := o.entry("bars")
		if o.env() != "v3" || !ownsContainers(edit) || ownsContainers(bars) {
			t.Errorf("after update: %s", out2)
		}
		// bars owned nothing but the containers: its entry goes.
		if got, want := strings.Join(o.managers(), ","), "kubectl-client-side-apply/Update,kubectl-edit/Update"; got != want {
			t.Errorf("managers %s, want %s", got, want)
		}
		// Applying again now conflicts with the editor.
		_, err = patchObject(a, out2, "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "bars", false)
		if st := statusOf(t, err); st.Code != http.StatusConflict || !strings.Contains(st.Message, `conflict with "kubectl-edit"`) {
			t.Errorf("got %d %q", st.Code, st.Message)
		}
	})
}

// TestClientSideApplyUpgrade follows kubectl's first server-side apply of an
// object it applied client-side: it rewrites managedFields with a JSON patch
// (and the resourceVersion it read as a precondition), then applies.
func TestClientSideApplyUpgrade(t *testing.T) {
	a := servicesResource(t)
	live := csaLive(t, "v1")
	o := decodeTestObject(t, live)
	csa, _ := o.entry("kubectl-client-side-apply")
	upgraded := csa
	upgraded.Manager, upgraded.Operation = "kubectl", metav1.ManagedFieldsOperationApply
	value, err := json.Marshal([]metav1.ManagedFieldsEntry{upgraded})
	if err != nil {
		t.Fatal(err)
	}
	patch := `[{"op":"replace","path":"/metadata/managedFields","value":` + string(value) + `},` +
		`{"op":"replace","path":"/metadata/resourceVersion","value":"42"}]`
	out, err := patchObject(a, live, "application/json-patch+json", []byte(patch), "kubectl", false)
	if err != nil {
		t.Fatalf("managedFields patch: %v", err)
	}
	if got := strings.Join(decodeTestObject(t, out).managers(), ","); got != "kubectl/Apply" {
		t.Fatalf("managers after upgrade %s, want kubectl/Apply", got)
	}
	out, err = patchObject(a, out, "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "kubectl", false)
	if err != nil {
		t.Fatalf("apply after upgrade: %v", err)
	}
	if o := decodeTestObject(t, out); o.env() != "v2" || strings.Join(o.managers(), ",") != "kubectl/Apply" {
		t.Errorf("after apply: %s", out)
	}

	// A resourceVersion read before someone else's write is refused.
	stale := strings.Replace(patch, `"value":"42"`, `"value":"41"`, 1)
	_, err = patchObject(a, live, "application/json-patch+json", []byte(stale), "kubectl", false)
	if st := statusOf(t, err); st.Code != http.StatusConflict {
		t.Errorf("stale upgrade: got %d %q, want 409", st.Code, st.Message)
	}
}

func TestUpdateManagedFields(t *testing.T) {
	a := servicesResource(t)
	created, err := updateManagedFields(a, nil, []byte(ksvcJSON("v1")), "kubectl-create", "Update")
	if err != nil {
		t.Fatal(err)
	}
	o := decodeTestObject(t, created)
	e, ok := o.entry("kubectl-create")
	// As kube-apiserver records a create: the maps the writer created are
	// its own ("." entries), the atomic list as a whole.
	if !ok || e.Operation != metav1.ManagedFieldsOperationUpdate || e.FieldsType != "FieldsV1" ||
		string(e.FieldsV1.Raw) != `{"f:spec":{".":{},"f:template":{".":{},"f:spec":{".":{},"f:containers":{}}}}}` {
		t.Errorf("after create: %s", created)
	}
	if _, err := updateManagedFields(a, nil, []byte(ksvcJSON("v1")), "m", "Apply"); err == nil {
		t.Error("operation Apply accepted by updateManagedFields")
	}
	if _, err := updateManagedFields(a, nil, []byte(`{`), "m", "Update"); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestFieldManagerName(t *testing.T) {
	tests := []struct{ manager, userAgent, want string }{
		{"bars", "kubectl/v1.32.0 (linux/amd64) kubernetes/abc", "bars"},
		{"", "kubectl/v1.32.0 (linux/amd64) kubernetes/abc", "kubectl"},
		{"", "kn", "kn"},
		{"", strings.Repeat("a", 200), strings.Repeat("a", 128)},
	}
	for _, tc := range tests {
		if got := fieldManagerName(tc.manager, tc.userAgent); got != tc.want {
			t.Errorf("fieldManagerName(%q, %q) = %q, want %q", tc.manager, tc.userAgent, got, tc.want)
		}
	}
}

// TestKubectlServerSideUpgrade replays what kubectl apply --server-side
// sends for an object it applied client-side before: the apply (manager
// "kubectl", whose conflicts with the client-side apply are allowed by the
// last-applied annotation), an apply of the annotation alone under
// "kubectl-last-applied", then client-go's managedFields upgrade patch.
func TestKubectlServerSideUpgrade(t *testing.T) {
	a := servicesResource(t)
	withLastApplied := func(env string) []byte {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(ksvcJSON(env)), &m); err != nil {
			t.Fatal(err)
		}
		m["metadata"].(map[string]any)["annotations"] = map[string]any{lastAppliedAnnotation: ksvcJSON(env) + "\n"}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	created, err := updateManagedFields(a, nil, withLastApplied("v1"), "kubectl-client-side-apply", "Update")
	if err != nil {
		t.Fatal(err)
	}
	live := stored(t, created)

	out, err := patchObject(a, live, "application/apply-patch+yaml", []byte(ksvcJSON("v2")), "kubectl", false)
	if err != nil {
		t.Fatalf("server-side apply by kubectl: %v", err)
	}
	o := decodeTestObject(t, out)
	if o.env() != "v2" || !strings.Contains(o.Metadata.Annotations[lastAppliedAnnotation], `"value":"v2"`) {
		t.Fatalf("after apply: env %q, last-applied %q", o.env(), o.Metadata.Annotations[lastAppliedAnnotation])
	}

	justAnnotation := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"default",` +
		`"annotations":{"kubectl.kubernetes.io/last-applied-configuration":` + strconv.Quote(o.Metadata.Annotations[lastAppliedAnnotation]) + `}}}`
	if out, err = patchObject(a, out, "application/apply-patch+yaml", []byte(justAnnotation), "kubectl-last-applied", false); err != nil {
		t.Fatalf("apply of the annotation: %v", err)
	}

	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(out); err != nil {
		t.Fatal(err)
	}
	csaManagers := sets.New[string]()
	for _, e := range csaupgrade.FindFieldsOwners(obj.GetManagedFields(), metav1.ManagedFieldsOperationUpdate,
		fieldpath.NewSet(fieldpath.MakePathOrDie("metadata", "annotations", lastAppliedAnnotation))) {
		csaManagers.Insert(e.Manager)
	}
	if !csaManagers.Has("kubectl-client-side-apply") {
		t.Fatalf("client-side apply does not own the annotation: %v", obj.GetManagedFields())
	}
	upgrade, err := csaupgrade.UpgradeManagedFieldsPatch(obj, csaManagers, "kubectl")
	if err != nil || upgrade == nil {
		t.Fatalf("upgrade patch %s, %v", upgrade, err)
	}
	if out, err = patchObject(a, out, "application/json-patch+json", upgrade, "kubectl", false); err != nil {
		t.Fatalf("upgrade patch: %v", err)
	}
	o = decodeTestObject(t, out)
	got := o.managers()
	sort.Strings(got)
	if strings.Join(got, ",") != "kubectl-last-applied/Apply,kubectl/Apply" {
		t.Errorf("managers after upgrade %v, want kubectl/Apply and kubectl-last-applied/Apply", got)
	}
	if e, _ := o.entry("kubectl"); !ownsContainers(e) {
		t.Errorf("kubectl does not own containers: %s", out)
	}
}

// TestForceApplyAfterClientSideApply replays the reference's
// kubectl apply -f ssa-1.yaml; kubectl apply --server-side
// --field-manager=bars --force-conflicts -f ssa-2.yaml: the forced apply,
// client-go's managedFields upgrade patch, and the apply kubectl repeats
// after it. The reference ends with bars alone owning the containers and the
// last-applied annotation gone.
func TestForceApplyAfterClientSideApply(t *testing.T) {
	a := servicesResource(t)
	manifest := func(env string) string {
		return `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"kk-ssa","namespace":"default"},` +
			`"spec":{"template":{"spec":{"containers":[{"image":"127.0.0.1:5000/samples/hello:latest","env":[{"name":"TARGET","value":"` + env + `"}]}]}}}}`
	}
	// kubectl's client-side apply creates the object with its configuration
	// in the last-applied annotation.
	lastApplied := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"annotations":{},"name":"kk-ssa","namespace":"default"},` +
		`"spec":{"template":{"spec":{"containers":[{"env":[{"name":"TARGET","value":"one"}],"image":"127.0.0.1:5000/samples/hello:latest"}]}}}}` + "\n"
	create := strings.Replace(manifest("one"), `"namespace":"default"}`,
		`"namespace":"default","annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+strconv.Quote(lastApplied)+`}}`, 1)
	created, err := updateManagedFields(a, nil, []byte(create), "kubectl-client-side-apply", "Update")
	if err != nil {
		t.Fatal(err)
	}
	live := stored(t, created)

	out, err := patchObject(a, live, "application/apply-patch+yaml", []byte(manifest("two")), "bars", true)
	if err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	// The reference's managedFields at this point, and after a label
	// merge-patched by another manager.
	want := []string{
		`bars/Apply {"f:spec":{"f:template":{"f:spec":{"f:containers":{}}}}}`,
		`kubectl-client-side-apply/Update {"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}},"f:spec":{".":{},"f:template":{".":{},"f:spec":{}}}}`,
	}
	if got := decodeTestObject(t, out).fields(); !slices.Equal(got, want) {
		t.Errorf("managedFields after the forced apply\n got %q\nwant %q", got, want)
	}
	labelled, err := patchObject(a, out, "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), "ed", false)
	if err != nil {
		t.Fatal(err)
	}
	// Entries of one operation are ordered by time, then manager: the
	// writes here fall in one second, so compare them as a set.
	want = append(want, `ed/Update {"f:metadata":{"f:labels":{".":{},"f:x":{}}}}`)
	got := decodeTestObject(t, labelled).fields()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("managedFields after a label patch\n got %q\nwant %q", got, want)
	}

	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(out); err != nil {
		t.Fatal(err)
	}
	csaManagers := sets.New[string]()
	for _, e := range csaupgrade.FindFieldsOwners(obj.GetManagedFields(), metav1.ManagedFieldsOperationUpdate,
		fieldpath.NewSet(fieldpath.MakePathOrDie("metadata", "annotations", lastAppliedAnnotation))) {
		csaManagers.Insert(e.Manager)
	}
	upgrade, err := csaupgrade.UpgradeManagedFieldsPatch(obj, csaManagers, "bars")
	if err != nil || upgrade == nil {
		t.Fatalf("upgrade patch %s, %v", upgrade, err)
	}
	if out, err = patchObject(a, out, "application/json-patch+json", upgrade, "bars", false); err != nil {
		t.Fatalf("upgrade patch: %v", err)
	}
	if got := strings.Join(decodeTestObject(t, out).managers(), ","); got != "bars/Apply" {
		t.Fatalf("managers after the upgrade patch %s, want bars/Apply", got)
	}
	if out, err = patchObject(a, out, "application/apply-patch+yaml", []byte(manifest("two")), "bars", true); err != nil {
		t.Fatalf("apply after upgrade: %v", err)
	}

	o := decodeTestObject(t, out)
	if o.env() != "two" || len(o.Metadata.Annotations) != 0 || o.Metadata.UID == "" {
		t.Errorf("final object %s", out)
	}
	if len(o.Metadata.ManagedFields) != 1 {
		t.Fatalf("managedFields %s, want bars alone", out)
	}
	e := o.Metadata.ManagedFields[0]
	if e.Manager != "bars" || e.Operation != metav1.ManagedFieldsOperationApply || e.APIVersion != "serving.knative.dev/v1" ||
		e.FieldsType != "FieldsV1" || string(e.FieldsV1.Raw) != `{"f:spec":{"f:template":{"f:spec":{"f:containers":{}}}}}` {
		t.Errorf("managedFields entry %+v, fieldsV1 %s", e, e.FieldsV1.Raw)
	}
}

// TestPatchDomainMappingVersions patches a DomainMapping stored as v1beta1
// through v1alpha1: the object is answered in the version asked for and the
// manager's entry records it.
func TestPatchDomainMappingVersions(t *testing.T) {
	v1alpha1, ok := findAPIResource(servingGroup, "v1alpha1", "domainmappings")
	if !ok {
		t.Fatal("domainmappings v1alpha1 not served")
	}
	live := `{"apiVersion":"serving.knative.dev/v1beta1","kind":"DomainMapping","metadata":{"name":"example.org","namespace":"default",` +
		`"uid":"u1","resourceVersion":"7"},"spec":{"ref":{"apiVersion":"serving.knative.dev/v1","kind":"Service","name":"hello"}}}`
	apply := "apiVersion: serving.knative.dev/v1alpha1\nkind: DomainMapping\nmetadata:\n  name: example.org\n  namespace: default\n" +
		"spec:\n  ref:\n    apiVersion: serving.knative.dev/v1\n    kind: Service\n    name: other\n"
	// The stored object has no managedFields: as on kube-apiserver, its
	// fields belong to "before-first-apply" and a change conflicts.
	_, err := patchObject(v1alpha1, []byte(live), "application/apply-patch+yaml", []byte(apply), "dm", false)
	if st := statusOf(t, err); st.Code != http.StatusConflict ||
		st.Message != `Apply failed with 1 conflict: conflict with "before-first-apply" using serving.knative.dev/v1alpha1: .spec.ref.name` {
		t.Errorf("got %d %q", st.Code, st.Message)
	}
	out, err := patchObject(v1alpha1, []byte(live), "application/apply-patch+yaml", []byte(apply), "dm", true)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		APIVersion string `json:"apiVersion"`
		Metadata   struct {
			ManagedFields []metav1.ManagedFieldsEntry `json:"managedFields"`
		} `json:"metadata"`
		Spec struct {
			Ref struct{ Name string } `json:"ref"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatal(err)
	}
	if o.APIVersion != "serving.knative.dev/v1alpha1" || o.Spec.Ref.Name != "other" || len(o.Metadata.ManagedFields) == 0 ||
		o.Metadata.ManagedFields[0].Manager != "dm" || o.Metadata.ManagedFields[0].APIVersion != "serving.knative.dev/v1alpha1" ||
		string(o.Metadata.ManagedFields[0].FieldsV1.Raw) != `{"f:spec":{"f:ref":{"f:apiVersion":{},"f:kind":{},"f:name":{}}}}` {
		t.Errorf("patched DomainMapping %s", out)
	}
}

func TestMergePatchDomainMappingOtherVersion(t *testing.T) {
	v1alpha1, _ := findAPIResource(servingGroup, "v1alpha1", "domainmappings")
	live := `{"apiVersion":"serving.knative.dev/v1beta1","kind":"DomainMapping","metadata":{"name":"example.org","namespace":"default",` +
		`"uid":"u1","resourceVersion":"7"},"spec":{"ref":{"apiVersion":"serving.knative.dev/v1","kind":"Service","name":"hello"}}}`
	out, err := patchObject(v1alpha1, []byte(live), "application/merge-patch+json", []byte(`{"spec":{"ref":{"name":"other"}}}`), "m", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"apiVersion":"serving.knative.dev/v1alpha1"`) || !strings.Contains(string(out), `"name":"other"`) {
		t.Errorf("patched %s", out)
	}
}
