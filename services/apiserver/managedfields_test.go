package apiserver

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// TestManagedFieldsBeforeDefaults checks that a write's managed fields are
// those the client sent: Knative's defaults (containerConcurrency,
// timeoutSeconds, traffic, the readiness probe, the creator annotations)
// are added after the field manager ran, as Knative's webhook adds them
// after kube-apiserver's, so no manager owns them.
func TestManagedFieldsBeforeDefaults(t *testing.T) {
	// The reference's kubectl apply of its ksvc.yaml: a POST with the
	// manifest and its last-applied annotation.
	const lastApplied = `{\"apiVersion\":\"serving.knative.dev/v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"kk-hello\",\"namespace\":\"default\"},\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"env\":[{\"name\":\"TARGET\",\"value\":\"one\"}],\"image\":\"127.0.0.1:5000/samples/hello:latest\"}]}}}}\n`
	manifest := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"` +
		lastApplied + `"},"name":"kk-hello","namespace":"default"},"spec":{"template":{"spec":{"containers":[{"env":[{"name":"TARGET","value":"one"}],"image":"127.0.0.1:5000/samples/hello:latest"}]}}}}`
	// kube-apiserver's entry for that create (Knative v0.51.0's CRD).
	const csaFields = `{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}},` +
		`"f:spec":{".":{},"f:template":{".":{},"f:spec":{".":{},"f:containers":{}}}}}`

	srv, _ := newServer(t)
	code, b := do(t, srv, "POST", svcs+"?fieldManager=kubectl-client-side-apply", manifest)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	o := decodeTestObject(t, b)
	if o.Metadata.Annotations[v1.CreatorAnnotation] == "" || !strings.Contains(string(b), `"containerConcurrency"`) || !strings.Contains(string(b), `"traffic"`) {
		t.Fatalf("create did not default: %s", b)
	}
	if got := o.fields(); len(got) != 1 || got[0] != "kubectl-client-side-apply/Update "+csaFields {
		t.Fatalf("managedFields after create\n got %v\nwant [kubectl-client-side-apply/Update %s]", got, csaFields)
	}

	// kubectl apply of a changed manifest: a merge patch of the live
	// object, which carries the defaults; they stay unowned.
	patch := `{"spec":{"template":{"spec":{"containers":[{"env":[{"name":"TARGET","value":"two"}],"image":"127.0.0.1:5000/samples/hello:latest"}]}}}}`
	code, b = send(t, srv, srv.URL, "PATCH", svcs+"/kk-hello?fieldManager=kubectl-client-side-apply", patch, "Content-Type", "application/merge-patch+json")
	if code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	o = decodeTestObject(t, b)
	if o.env() != "two" {
		t.Fatalf("patch not applied: %s", b)
	}
	if got := o.fields(); len(got) != 1 || got[0] != "kubectl-client-side-apply/Update "+csaFields {
		t.Fatalf("managedFields after patch\n got %v\nwant [kubectl-client-side-apply/Update %s]", got, csaFields)
	}

	// A PUT of the object as read (defaults included) owns what it sent,
	// defaults and all; a PUT of only the manifest owns only the manifest.
	code, b = do(t, srv, "PUT", svcs+"/kk-hello?fieldManager=editor", manifest)
	if code != http.StatusOK {
		t.Fatalf("update: %d %s", code, b)
	}
	o = decodeTestObject(t, b)
	e, ok := o.entry("editor")
	if !ok {
		t.Fatalf("no editor entry: %v", o.fields())
	}
	for _, unowned := range []string{"containerConcurrency", "timeoutSeconds", "traffic", "readinessProbe", v1.CreatorAnnotation, v1.LastModifierAnnotation} {
		if strings.Contains(string(e.FieldsV1.Raw), unowned) {
			t.Errorf("editor owns the default %s: %s", unowned, e.FieldsV1.Raw)
		}
	}
	if !strings.Contains(string(b), `"containerConcurrency"`) || o.env() != "one" {
		t.Fatalf("update did not default or apply: %s", b)
	}
}
