package apiserver

import (
	"io"
	"mime"
	"net/http"
	"slices"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

func openAPIRoot(t *testing.T) openapi3.Root {
	t.Helper()
	srv, _ := newServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL, BearerToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return openapi3.NewRoot(dc.OpenAPIV3())
}

// kubectl explain walks a kind's schema from the document of its group
// version, found by the x-kubernetes-group-version-kind extension.
func TestOpenAPIV3(t *testing.T) {
	root := openAPIRoot(t)
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []k8sschema.GroupVersion{{Group: servingGroup, Version: "v1"}, {Group: servingGroup, Version: "v1beta1"}, {Version: "v1"}} {
		if !slices.Contains(gvs, want) {
			t.Errorf("index %v lacks %v", gvs, want)
		}
	}
	doc, err := root.GVSpec(k8sschema.GroupVersion{Group: servingGroup, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	svc := doc.Components.Schemas["dev.knative.serving.v1.Service"]
	if svc == nil {
		t.Fatal("no dev.knative.serving.v1.Service schema")
	}
	var gvk []map[string]string
	if err := svc.Extensions.GetObject("x-kubernetes-group-version-kind", &gvk); err != nil || len(gvk) != 1 || gvk[0]["kind"] != "Service" {
		t.Errorf("gvk extension %v %v", gvk, err)
	}
	if ref := svc.Properties["metadata"].AllOf[0].Ref.String(); ref != "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("metadata ref %q", ref)
	}
	if _, ok := doc.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]; !ok {
		t.Error("ObjectMeta is referenced but not published")
	}
	walk := func(s spec.Schema, path ...string) spec.Schema {
		for _, p := range path {
			if p == "[]" {
				s = *s.Items.Schema
				continue
			}
			c, ok := s.Properties[p]
			if !ok {
				t.Fatalf("no field %s in %v", p, path)
			}
			s = c
		}
		return s
	}
	tmpl := walk(*svc, "spec", "template")
	if m := walk(tmpl, "metadata"); m.Extensions["x-kubernetes-preserve-unknown-fields"] != true || len(m.Properties) != 5 {
		t.Errorf("template metadata %+v", m)
	}
	rs := walk(tmpl, "spec")
	if !slices.Equal(rs.Required, []string{"containers"}) {
		t.Errorf("revision spec required %v", rs.Required)
	}
	if cc := walk(rs, "containerConcurrency"); cc.Type[0] != "integer" || cc.Format != "int64" {
		t.Errorf("containerConcurrency %+v", cc)
	}
	if env := walk(rs, "containers", "[]", "env", "[]"); !slices.Equal(env.Required, []string{"name"}) {
		t.Errorf("env required %v", env.Required)
	}
	if port := walk(rs, "containers", "[]", "readinessProbe", "httpGet", "port"); port.Extensions["x-kubernetes-int-or-string"] != true {
		t.Errorf("probe port %+v", port)
	}
	if sc := walk(rs, "securityContext"); sc.Extensions["x-kubernetes-preserve-unknown-fields"] != true || len(sc.Properties) != 0 {
		t.Errorf("pod securityContext %+v", sc)
	}
	if walk(*svc, "status", "conditions", "[]").Required == nil {
		t.Error("conditions require status and type")
	}

	// kubectl sends fieldValidation only when the PATCH operation of the
	// kind lists it.
	item := doc.Paths.Paths["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
	if item == nil || item.Patch == nil {
		t.Fatal("no PATCH on a service")
	}
	var names []string
	for _, p := range item.Patch.Parameters {
		names = append(names, p.Name+"@"+p.In)
	}
	for _, want := range []string{"fieldValidation@query", "dryRun@query", "fieldManager@query"} {
		if !slices.Contains(names, want) {
			t.Errorf("PATCH parameters %v lack %s", names, want)
		}
	}
	if _, smp := item.Patch.RequestBody.Content["application/strategic-merge-patch+json"]; smp {
		t.Error("PATCH offers strategic merge patch, which custom resources do not take")
	}
	if _, merge := item.Patch.RequestBody.Content["application/merge-patch+json"]; !merge {
		t.Error("PATCH does not offer merge patch")
	}
	var opGVK map[string]string
	if err := item.Patch.Extensions.GetObject("x-kubernetes-group-version-kind", &opGVK); err != nil || opGVK["kind"] != "Service" || opGVK["group"] != servingGroup {
		t.Errorf("PATCH gvk %v %v", opGVK, err)
	}
	for _, p := range []string{
		"/apis/serving.knative.dev/v1/namespaces/{namespace}/services",
		"/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}/status",
		"/apis/serving.knative.dev/v1/services",
		"/apis/serving.knative.dev/v1/namespaces/{namespace}/revisions/{name}",
	} {
		if doc.Paths.Paths[p] == nil {
			t.Errorf("no path %s", p)
		}
	}
}

// The Swagger 2.0 document is served as JSON and, when asked first, as
// the protobuf client-go decodes, under either spelling of its media type;
// the answer's Content-Type is always the dotted one, which Go's mime
// parser (and so client-go's decoder) accepts.
func TestOpenAPIV2(t *testing.T) {
	srv, _ := newServer(t)
	for _, accept := range []string{
		openAPIV2ProtobufDeprecated + ",application/json",
		openAPIV2Protobuf + ",application/json",
		"application/com.github.proto-openapi.spec.v2.v1.0+protobuf;q=1.0",
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/openapi/v2", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != 200 || ct != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
			t.Fatalf("Accept %s: %d %s", accept, resp.StatusCode, ct)
		}
		if _, _, err := mime.ParseMediaType(ct); err != nil {
			t.Errorf("Content-Type %q does not parse: %v", ct, err)
		}
		var doc openapiv2.Document
		if err := proto.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
			found = found || d.Name == "dev.knative.serving.v1.Service"
		}
		if doc.Swagger != "2.0" || !found {
			t.Errorf("Accept %s: swagger %q, Service defined: %v", accept, doc.Swagger, found)
		}
	}

	code, body := do(t, srv, "GET", "/openapi/v3/apis/example.com/v1", "")
	if code != 404 || decodeStatus(t, body).Reason != "NotFound" {
		t.Errorf("unknown group version: %d %s", code, body)
	}
}

// client-go's discovery client, which kubectl create/apply use to fetch
// the Swagger document for client-side validation, decodes kiln's answer.
func TestOpenAPIV2DiscoveryClient(t *testing.T) {
	doc, err := discoveryClient(t, token).OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	if doc.GetSwagger() != "2.0" || len(doc.GetDefinitions().GetAdditionalProperties()) == 0 {
		t.Errorf("swagger %q with %d definitions", doc.GetSwagger(), len(doc.GetDefinitions().GetAdditionalProperties()))
	}
}
