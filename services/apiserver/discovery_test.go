package apiserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kiln-serving/kiln/api/auth"
)

func discoveryClient(t *testing.T, tok string) *discovery.DiscoveryClient {
	t.Helper()
	srv, _ := newServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL, BearerToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// client-go asks for the aggregated form first and reads every group,
// version and resource from it.
func TestDiscoveryClient(t *testing.T) {
	dc := discoveryClient(t, token)
	groups, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Name+"="+g.PreferredVersion.Version)
	}
	for _, want := range []string{"=v1", "serving.knative.dev=v1"} {
		if !slices.Contains(names, want) {
			t.Errorf("groups %v lack %s", names, want)
		}
	}
	found := map[string]bool{}
	for _, l := range lists {
		for _, r := range l.APIResources {
			found[l.GroupVersion+" "+r.Name+" "+r.Kind+" "+strings.Join(r.ShortNames, ",")] = true
		}
	}
	for _, want := range []string{
		"serving.knative.dev/v1 services Service kservice,ksvc",
		"serving.knative.dev/v1 services/status Service ",
		"serving.knative.dev/v1 configurations Configuration config,cfg",
		"serving.knative.dev/v1 revisions Revision rev",
		"serving.knative.dev/v1 routes Route rt",
		"serving.knative.dev/v1beta1 domainmappings DomainMapping dm",
		"v1 namespaces Namespace ns",
		"v1 secrets Secret ",
		"v1 configmaps ConfigMap cm",
		"v1 serviceaccounts ServiceAccount sa",
		"v1 services Service svc",
		"v1 pods Pod po",
	} {
		if !found[want] {
			t.Errorf("discovery lacks %q", want)
		}
	}
	v, err := dc.ServerVersion()
	if err != nil || v.Major != "1" || !strings.HasPrefix(v.GitVersion, "v1.") {
		t.Errorf("version: %+v %v", v, err)
	}
}

// kubectl resolves short names and categories through a RESTMapper built
// from discovery.
func TestRESTMapper(t *testing.T) {
	dc := discoveryClient(t, token)
	cached := memory.NewMemCacheClient(dc)
	m := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, func(w string) { t.Log(w) })
	for _, tc := range []struct{ in, resource, version string }{
		{"ksvc", "services", "v1"}, {"kservice", "services", "v1"}, {"rev", "revisions", "v1"},
		{"rt", "routes", "v1"}, {"cfg", "configurations", "v1"}, {"config", "configurations", "v1"},
		{"dm", "domainmappings", "v1beta1"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			gvr, err := m.ResourceFor(k8sschema.GroupVersionResource{Resource: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if gvr.Group != servingGroup || gvr.Resource != tc.resource || gvr.Version != tc.version {
				t.Errorf("%s → %v", tc.in, gvr)
			}
		})
	}
	for _, tc := range []struct{ in, group string }{{"sa", ""}, {"ns", ""}, {"cm", ""}, {"svc", ""}, {"services", ""}, {"po", ""}, {"pods", ""}} {
		gvr, err := m.ResourceFor(k8sschema.GroupVersionResource{Resource: tc.in})
		if err != nil || gvr.Group != tc.group {
			t.Errorf("%s → %v, %v", tc.in, gvr, err)
		}
	}
	expander := restmapper.NewDiscoveryCategoryExpander(dc)
	grs, ok := expander.Expand("knative")
	if !ok {
		t.Fatal("category knative is unknown")
	}
	var got []string
	for _, gr := range grs {
		got = append(got, gr.String())
	}
	for _, want := range []string{"services.serving.knative.dev", "configurations.serving.knative.dev", "revisions.serving.knative.dev", "routes.serving.knative.dev", "domainmappings.serving.knative.dev"} {
		if !slices.Contains(got, want) {
			t.Errorf("knative expands to %v, lacking %s", got, want)
		}
	}
}

func TestAggregatedDiscovery(t *testing.T) {
	srv, _ := newServer(t)
	get := func(path, accept, tok string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept", accept)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, []byte(b.String())
	}
	kubectlAccept := "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
	resp, b := get("/apis", kubectlAccept, token)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != aggregatedType {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var l apidiscoveryv2.APIGroupDiscoveryList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Items[0].Name != servingGroup || l.Items[0].Versions[0].Version != "v1" {
		t.Fatalf("first group: %+v", l.Items[0])
	}
	var ksvc *apidiscoveryv2.APIResourceDiscovery
	var order []string
	for i, r := range l.Items[0].Versions[0].Resources {
		order = append(order, r.Resource)
		if r.Resource == "services" {
			ksvc = &l.Items[0].Versions[0].Resources[i]
		}
	}
	if !slices.Equal(order, []string{"configurations", "revisions", "routes", "services"}) {
		t.Errorf("serving.knative.dev/v1 resources in order %v", order)
	}
	if ksvc == nil || ksvc.Scope != apidiscoveryv2.ScopeNamespace || ksvc.SingularResource != "service" ||
		!slices.Equal(ksvc.ShortNames, []string{"kservice", "ksvc"}) || !slices.Equal(ksvc.Categories, []string{"all", "knative", "serving"}) ||
		len(ksvc.Subresources) != 1 || ksvc.Subresources[0].Subresource != "status" || ksvc.ResponseKind.Kind != "Service" {
		t.Errorf("services: %+v", ksvc)
	}

	// A cache revalidates with the entity tag.
	resp2, _ := func() (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/apis", nil)
		req.Header.Set("Accept", kubectlAccept)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r, nil
	}()
	if resp2.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp2.StatusCode)
	}

	for _, tc := range []struct {
		name, path, accept, tok string
		code                    int
		contains                string
	}{
		{"plain apis", "/apis", "application/json", token, 200, `"kind":"APIGroupList"`},
		{"core aggregated", "/api", kubectlAccept, token, 200, `"resource":"namespaces"`},
		{"core versions", "/api", "application/json", token, 200, `"versions":["v1"]`},
		{"group", "/apis/serving.knative.dev", "", token, 200, `"preferredVersion":{"groupVersion":"serving.knative.dev/v1","version":"v1"}`},
		{"unknown group", "/apis/example.com/v1", "", token, 404, `"reason":"NotFound"`},
		{"unknown version", "/apis/serving.knative.dev/v9", "", token, 404, `the server could not find the requested resource`},
		{"no credentials", "/apis", "", "", 401, `"reason":"Unauthorized"`},
		{"version is public", "/version", "", "", 200, `"gitVersion":"v1.37.2+kiln"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := get(tc.path, tc.accept, tc.tok)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.contains) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

// Discovery and OpenAPI describe the API, not its objects: every
// authenticated caller reads them, whatever its roles, as Kubernetes'
// system:discovery grants.
func TestDiscoveryForEveryAuthenticatedCaller(t *testing.T) {
	srv, _ := newServer(t)
	c := http.DefaultClient
	bob := issueToken(t, c, srv.URL, auth.TokenSpec{Subject: "bob", Namespace: "dev", Role: auth.RoleView}).Status.Token
	for _, p := range []string{"/api", "/api/v1", "/apis", "/apis/serving.knative.dev", "/apis/serving.knative.dev/v1", "/openapi/v3", "/openapi/v3/apis/serving.knative.dev/v1", "/openapi/v2"} {
		if code, b := call(t, c, srv.URL, bob, "GET", p, ""); code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, b)
		}
		if code, _ := call(t, c, srv.URL, "wrong", "GET", p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s with a bad token: %d", p, code)
		}
	}
	if code, _ := call(t, c, srv.URL, bob, "GET", BasePath+"/namespaces/prod/services", ""); code != http.StatusForbidden {
		t.Errorf("objects outside bob's namespace: %d", code)
	}
}
