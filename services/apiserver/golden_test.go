package apiserver

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The files in testdata/kubeoracle are a real kube-apiserver's answers with
// Knative Serving's CRDs installed (see its README). These tests send kiln
// the same requests and hold its answers to them.

// oracle reads a recorded answer: the output between the "$ command" line
// and the trailing "[rc=N]".
func oracle(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kubeoracle", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	s = s[strings.Index(s, "\n")+1:]
	if i := strings.LastIndex(s, "[rc="); i >= 0 {
		s = s[:i]
	}
	return s
}

// oracleJSON decodes a recorded JSON answer (up to the first line that is
// not part of it, e.g. curl's "HTTP 415").
func oracleJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(oracle(t, name)))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func asJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// pick keeps the named keys of every object in items.
func pick(items []any, keys ...string) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		m := map[string]any{}
		for _, k := range keys {
			if v, ok := it.(map[string]any)[k]; ok {
				m[k] = v
			}
		}
		out = append(out, m)
	}
	return out
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s differs from kube-apiserver's\nkiln:\n%s\nkube-apiserver:\n%s", what, g, w)
	}
}

func TestGoldenVersion(t *testing.T) {
	srv, _ := newServer(t)
	code, b := send(t, srv, srv.URL, "GET", "/version", "")
	if code != http.StatusOK {
		t.Fatalf("/version: %d %s", code, b)
	}
	got, want := asJSON(t, b), oracleJSON(t, "50-curl-version.txt")
	for _, k := range []string{"major", "minor", "emulationMajor", "emulationMinor", "minCompatibilityMajor", "minCompatibilityMinor"} {
		if got[k] != want[k] {
			t.Errorf("/version %s = %v, kube-apiserver %v", k, got[k], want[k])
		}
	}
}

func TestGoldenDiscovery(t *testing.T) {
	srv, _ := newServer(t)
	code, b := send(t, srv, srv.URL, "GET", "/apis/serving.knative.dev/v1", "")
	if code != http.StatusOK {
		t.Fatalf("discovery: %d %s", code, b)
	}
	got, want := asJSON(t, b), oracleJSON(t, "53-curl-serving-v1.txt")
	// storageVersionHash is a hash of kube-apiserver's storage; kiln has none.
	keys := []string{"name", "singularName", "namespaced", "kind", "verbs", "shortNames", "categories"}
	// kube-apiserver lists CRD resources in the order they were installed;
	// compare by name.
	byName := func(items []any) []any {
		out := pick(items, keys...)
		sort.Slice(out, func(i, j int) bool {
			return out[i].(map[string]any)["name"].(string) < out[j].(map[string]any)["name"].(string)
		})
		return out
	}
	sameJSON(t, "/apis/serving.knative.dev/v1", byName(got["resources"].([]any)), byName(want["resources"].([]any)))
	if got["groupVersion"] != want["groupVersion"] || got["kind"] != want["kind"] {
		t.Fatalf("header: %v", got)
	}
}

func TestGoldenAggregatedDiscovery(t *testing.T) {
	srv, _ := newServer(t)
	accept := "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	code, b := send(t, srv, srv.URL, "GET", "/apis", "", "Accept", accept)
	if code != http.StatusOK {
		t.Fatalf("aggregated discovery: %d %s", code, b)
	}
	group := func(doc map[string]any) map[string]any {
		for _, g := range doc["items"].([]any) {
			if g.(map[string]any)["metadata"].(map[string]any)["name"] == "serving.knative.dev" {
				return g.(map[string]any)
			}
		}
		t.Fatalf("no serving.knative.dev group in %v", doc)
		return nil
	}
	got, want := group(asJSON(t, b)), group(oracleJSON(t, "52-curl-apis-aggregated-serving.txt"))
	versions := map[string]any{}
	for _, v := range got["versions"].([]any) {
		versions[v.(map[string]any)["version"].(string)] = v.(map[string]any)["resources"]
	}
	// kiln also serves DomainMappings at v1alpha1 (after v1beta1), for
	// manifests written against it; every version the reference lists is
	// compared whole.
	for i, v := range want["versions"].([]any) {
		name := v.(map[string]any)["version"].(string)
		if gv := got["versions"].([]any)[i].(map[string]any)["version"]; gv != name {
			t.Fatalf("version %d is %v, kube-apiserver %s", i, gv, name)
		}
		sameJSON(t, "aggregated discovery of serving.knative.dev/"+name, versions[name], v.(map[string]any)["resources"])
	}
}

// kkHello is the reference's Service (inputs/ksvc.yaml), as kubectl's
// client-side apply creates it.
const kkHello = `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"kk-hello","namespace":"default"},` +
	`"spec":{"template":{"spec":{"containers":[{"image":"127.0.0.1:5000/samples/hello:latest","env":[{"name":"TARGET","value":"one"}]}]}}}}`

func TestGoldenErrors(t *testing.T) {
	srv, _ := newServer(t)
	code, b := send(t, srv, srv.URL, "GET", svcs+"/nope", "")
	want := oracleJSON(t, "59-curl-not-found.txt")
	if code != 404 {
		t.Fatalf("get missing: %d", code)
	}
	sameJSON(t, "NotFound", asJSON(t, b), want)
	if !strings.Contains(oracle(t, "24-get-missing.txt"), want["message"].(string)) {
		t.Fatal("kubectl prints the Status message")
	}

	if code, b := send(t, srv, srv.URL, "POST", svcs+"?fieldManager=kubectl-client-side-apply", kkHello, "Content-Type", "application/json"); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b = send(t, srv, srv.URL, "PATCH", svcs+"/kk-hello", "{}", "Content-Type", "application/strategic-merge-patch+json")
	if code != http.StatusUnsupportedMediaType {
		t.Fatalf("strategic merge patch: %d %s", code, b)
	}
	sameJSON(t, "strategic merge patch", asJSON(t, b), oracleJSON(t, "60-curl-strategic-patch.txt"))

	// kubectl apply --server-side --field-manager=bars with a changed env
	// value, after a client-side apply: the conflict kubectl prints.
	two := strings.Replace(kkHello, `"value":"one"`, `"value":"two"`, 1)
	code, b = send(t, srv, srv.URL, "PATCH", svcs+"/kk-hello?fieldManager=bars&fieldValidation=Strict", two, "Content-Type", "application/apply-patch+yaml")
	if code != http.StatusConflict {
		t.Fatalf("server-side apply over a client-side apply: %d %s", code, b)
	}
	msg := asJSON(t, b)["message"].(string)
	first := strings.SplitN(oracle(t, "14-ssa-conflict.txt"), "\n", 2)[0]
	if "error: "+msg != first {
		t.Fatalf("conflict message:\nkiln:           error: %s\nkube-apiserver: %s", msg, first)
	}
	if code, b := send(t, srv, srv.URL, "PATCH", svcs+"/kk-hello?fieldManager=bars&force=true", two, "Content-Type", "application/apply-patch+yaml"); code != 200 {
		t.Fatalf("forced apply: %d %s", code, b)
	}
}

func TestGoldenTable(t *testing.T) {
	srv, _ := newServer(t)
	if code, b := send(t, srv, srv.URL, "POST", svcs, kkHello, "Content-Type", "application/json"); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b := send(t, srv, srv.URL, "GET", svcs+"?as=Table", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	if code != 200 {
		t.Fatalf("table: %d %s", code, b)
	}
	got, want := asJSON(t, b), oracleJSON(t, "56-curl-table.txt")
	if got["kind"] != want["kind"] || got["apiVersion"] != want["apiVersion"] {
		t.Fatalf("kind: %v %v", got["kind"], got["apiVersion"])
	}
	sameJSON(t, "Table columns", got["columnDefinitions"], want["columnDefinitions"])
	// No controller runs here or there: the row is the name and empty status cells.
	sameJSON(t, "Table cells", pick(got["rows"].([]any), "cells"), pick(want["rows"].([]any), "cells"))
	obj := got["rows"].([]any)[0].(map[string]any)["object"].(map[string]any)
	if obj["kind"] != "PartialObjectMetadata" || obj["apiVersion"] != "meta.k8s.io/v1" {
		t.Fatalf("row object: %v", obj)
	}
}
