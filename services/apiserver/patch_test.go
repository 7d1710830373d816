package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
			400, metav1.StatusReasonBadRequest, "error decoding patch: unexpected end of JSON input"},
		{"json patch not a list", "application/json-patch+json", `{"op":"add"}`, "m", false,
			400, metav1.StatusReasonBadRequest, "error decoding patch: json: cannot unmarshal object into Go value of type []apiserver.jsonPatchOp"},
		{"json patch path missing", "application/json-patch+json", `[{"op":"replace","path":"/spec/nope/x","value":1}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"json patch test fails", "application/json-patch+json", `[{"op":"test","path":"/metadata/name","value":"other"}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"json patch unknown op", "application/json-patch+json", `[{"op":"frobnicate","path":"/spec"}]`, "m", false,
			422, metav1.StatusReasonInvalid, rejected},
		{"merge patch not json", "application/merge-patch+json", `{"spec":`, "m", false,
			400, metav1.StatusReasonBadRequest, "error decoding patch: unexpected end of JSON input"},
		{"merge patch on a missing object", "application/merge-patch+json", `{}`, "m", true,
			404, metav1.StatusReasonNotFound, `services.serving.knative.dev "" not found`},
		{"rename", "application/merge-patch+json", `{"metadata":{"name":"other"}}`, "m", false,
			400, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (hello)"},
		{"change kind", "application/merge-patch+json", `{"kind":"Route"}`, "m", false,
			400, metav1.StatusReasonBadRequest, "the patch may not change apiVersion and kind (serving.knative.dev/v1, Service) of the object"},
		{"change uid", "application/merge-patch+json", `{"metadata":{"uid":"x"}}`, "m", false,
			422, metav1.StatusReasonInvalid, `Service.serving.knative.dev "hello" is invalid: metadata.uid: Invalid value: "x": field is immutable`},
		{"stale resourceVersion", "application/merge-patch+json", `{"metadata":{"resourceVersion":"41"}}`, "m", false,
			409, metav1.StatusReasonConflict, `Operation cannot be fulfilled on services.serving.knative.dev "hello": the object has been modified; please apply your changes to the latest version and try again`},
		{"apply without field manager", "application/apply-patch+yaml", ksvcJSON("v1"), "", false,
			422, metav1.StatusReasonInvalid, `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`},
		{"apply not yaml", "application/apply-patch+yaml", "spec: [x\n", "m", false,
			400, metav1.StatusReasonBadRequest, "error decoding patch: error converting YAML to JSON: yaml: line 1: did not find expected ',' or ']'"},
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
		if !ok || e.Operation != metav1.ManagedFieldsOperationApply || !ownsContainers(e) || strings.Contains(string(e.FieldsV1.Raw), "status") {
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
		if got, want := strings.Join(o.managers(), ","), "bars/Apply,kubectl-client-side-apply/Update,kubectl-edit/Update"; got != want {
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
	if !ok || e.Operation != metav1.ManagedFieldsOperationUpdate || !ownsContainers(e) || e.FieldsType != "FieldsV1" {
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
