package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// A client may create a Revision controlled by an existing Configuration
// of its namespace (kn service import does), as Knative allows; it is
// labelled as the controller labels its own.
func TestClientCreatedRevisions(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	cfg := &v1.Configuration{}
	cfg.Metadata.Namespace, cfg.Metadata.Name = "default", "hello"
	cfg.Metadata.Labels = map[string]string{v1.ServiceLabelKey: "hello"}
	cfg.Metadata.OwnerReferences = ownerRefs(v1.KindService, "hello", "uid-svc")
	cfg.Spec.Template.Spec.Containers = []v1.Container{{Image: "img"}}
	created, err := reg.Configurations().Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	uid := created.Metadata.UID
	revs := BasePath + "/namespaces/default/revisions"
	revJSON := func(name, owners string) string {
		return `{"apiVersion":"serving.knative.dev/v1","kind":"Revision","metadata":{"name":"` + name + `","ownerReferences":` + owners +
			`},"spec":{"containers":[{"image":"127.0.0.1:5000/samples/hello@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}]}}`
	}
	ref := func(apiVersion, kind, name, uid string, controller bool) string {
		b, _ := json.Marshal([]map[string]any{{"apiVersion": apiVersion, "kind": kind, "name": name, "uid": uid, "controller": controller}})
		return string(b)
	}
	for _, tc := range []struct {
		name, body string
	}{
		{"no controller", revJSON("r1", ref(v1.APIVersion, v1.KindConfiguration, "hello", uid, false))},
		{"controller of another kind", revJSON("r2", ref(v1.APIVersion, v1.KindService, "hello", "uid-svc", true))},
		{"configuration missing", revJSON("r3", ref(v1.APIVersion, v1.KindConfiguration, "nope", uid, true))},
		{"stale uid", revJSON("r4", ref(v1.APIVersion, v1.KindConfiguration, "hello", "uid-of-an-earlier-hello", true))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, "POST", revs, tc.body)
			st := decodeStatus(t, b)
			if code != http.StatusUnprocessableEntity || st.Reason != "Invalid" || st.Details == nil ||
				len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "metadata.ownerReferences" {
				t.Fatalf("got %d %s, want 422 Invalid naming metadata.ownerReferences", code, b)
			}
		})
	}

	code, b := do(t, srv, "POST", revs, revJSON("hello-imported", ref(v1.APIVersion, v1.KindConfiguration, "hello", uid, true)))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	got, err := reg.Revisions().Get(ctx, "default", "hello-imported")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{v1.ConfigurationLabelKey: "hello", v1.ConfigurationGenerationLabel: "1", v1.ServiceLabelKey: "hello"}
	for k, v := range want {
		if got.Metadata.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Metadata.Labels[k], v, got.Metadata.Labels)
		}
	}
	if got.Spec.Containers[0].Name != v1.DefaultContainerName || got.Spec.TimeoutSeconds == nil {
		t.Errorf("the revision was not defaulted: %+v", got.Spec)
	}
	// Immutable like every Revision.
	if code, b := do(t, srv, "PUT", revs+"/hello-imported", revJSON("hello-imported", ref(v1.APIVersion, v1.KindConfiguration, "hello", uid, true))); code != http.StatusMethodNotAllowed {
		t.Fatalf("update: %d %s, want 405", code, b)
	}
}

func ownerRefs(kind, name, uid string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: v1.APIVersion, Kind: kind, Name: name, UID: uid, Controller: &yes}}
}
