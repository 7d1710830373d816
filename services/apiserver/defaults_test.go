package apiserver

import (
	"encoding/json"
	"net/http"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Knative's defaults are stored (so -o yaml and kn service export show
// them), and re-sending either the user's manifest or the defaulted object
// is no change: the generation stays.
func TestStoredDefaultsAreIdempotent(t *testing.T) {
	srv, _ := newServer(t)
	manifest := svcJSON("hello", "127.0.0.1:5000/samples/hello:latest")
	code, b := do(t, srv, "POST", svcs, manifest)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var created v1.Service
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	rs := created.Spec.Template.Spec
	c := rs.Containers[0]
	if c.Name != "user-container" || c.ReadinessProbe == nil || c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.TCPSocket.Port == nil ||
		c.ReadinessProbe.SuccessThreshold != 1 || rs.EnableServiceLinks == nil || *rs.EnableServiceLinks ||
		rs.ContainerConcurrency == nil || rs.TimeoutSeconds == nil || *rs.TimeoutSeconds != 300 {
		t.Fatalf("stored spec lacks Knative's defaults: %s", b)
	}
	for _, body := range []string{string(b), manifest} {
		code, out := do(t, srv, "PUT", svcs+"/hello", body)
		if code != http.StatusOK {
			t.Fatalf("update: %d %s", code, out)
		}
		var got v1.Service
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got.Metadata.Generation != 1 {
			t.Fatalf("re-sending %s made generation %d", body, got.Metadata.Generation)
		}
	}
}

// kn service update NAME with no flags re-sends the spec with the image
// pinned to the running revision's digest and the user's image in
// client.knative.dev/user-image: accepted as a new generation (a new
// revision of the same code).
func TestPinnedImageUpdate(t *testing.T) {
	srv, _ := newServer(t)
	if code, b := do(t, srv, "POST", svcs, svcJSON("hello", "127.0.0.1:5000/samples/hello:latest")); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b := do(t, srv, "GET", svcs+"/hello", "")
	if code != http.StatusOK {
		t.Fatalf("get: %d %s", code, b)
	}
	var s v1.Service
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	const pinned = "127.0.0.1:5000/samples/hello@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	s.Spec.Template.Spec.Containers[0].Image = pinned
	s.Spec.Template.Metadata.Annotations = map[string]string{"client.knative.dev/user-image": "127.0.0.1:5000/samples/hello:latest"}
	body, _ := json.Marshal(s)
	code, b = do(t, srv, "PUT", svcs+"/hello", string(body))
	if code != http.StatusOK {
		t.Fatalf("update: %d %s", code, b)
	}
	var got v1.Service
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata.Generation != 2 || got.Spec.Template.Spec.Containers[0].Image != pinned {
		t.Fatalf("update stored generation %d image %q", got.Metadata.Generation, got.Spec.Template.Spec.Containers[0].Image)
	}
}
