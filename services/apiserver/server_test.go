package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

const token = "s3cret"

func newServer(t *testing.T) (*httptest.Server, *registry.Registry) {
	t.Helper()
	return newServerOn(t, memstore.New())
}

func newServerOn(t *testing.T, st store.Store) (*httptest.Server, *registry.Registry) {
	t.Helper()
	reg := registry.New(st)
	srv := httptest.NewServer(New(reg, Options{Token: token}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return srv, reg
}

func svcJSON(name, image string, extra ...string) string {
	s := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"` + name + `"` + strings.Join(extra, "") +
		`},"spec":{"template":{"spec":{"containers":[{"image":"` + image + `"}]}}}}`
	return s
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeStatus(t *testing.T, b []byte) Status {
	t.Helper()
	var st Status
	if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a Status: %s (%v)", b, err)
	}
	return st
}

const svcs = BasePath + "/namespaces/default/services"

func TestCRUD(t *testing.T) {
	srv, reg := newServer(t)

	code, b := do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var created v1.Service
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	if created.Metadata.Namespace != "default" || created.Metadata.Generation != 1 || created.Metadata.UID == "" ||
		created.Spec.Template.Spec.Containers[0].Name != "user-container" || len(created.Spec.Traffic) != 1 {
		t.Fatalf("created object not defaulted/stamped: %s", b)
	}

	code, b = do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	if st := decodeStatus(t, b); code != http.StatusConflict || st.Reason != "AlreadyExists" {
		t.Fatalf("duplicate create: %d %s", code, b)
	}

	code, b = do(t, srv, "GET", svcs+"/hello", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"image":"img:1"`) {
		t.Fatalf("get: %d %s", code, b)
	}

	code, b = do(t, srv, "GET", svcs, "")
	var list struct {
		Kind     string
		Metadata ListMeta
		Items    []v1.Service
	}
	if err := json.Unmarshal(b, &list); err != nil || code != 200 || list.Kind != "ServiceList" || len(list.Items) != 1 || list.Metadata.ResourceVersion == "" {
		t.Fatalf("list: %d %s %v", code, b, err)
	}

	// The controller writes status; a user's update must not clobber it.
	cur, _ := reg.Services().Get(context.Background(), "default", "hello")
	cur.Status.URL = "http://hello.default.example.com"
	cur, err := reg.Services().Update(context.Background(), cur)
	if err != nil {
		t.Fatal(err)
	}
	upd := svcJSON("hello", "img:2", `,"resourceVersion":"`+cur.Metadata.ResourceVersion+`"`)
	upd = strings.TrimSuffix(upd, "}") + `,"status":{"url":"http://evil"}}`
	code, b = do(t, srv, "PUT", svcs+"/hello", upd)
	var updated v1.Service
	_ = json.Unmarshal(b, &updated)
	if code != http.StatusOK || updated.Metadata.Generation != 2 || updated.Status.URL != "http://hello.default.example.com" {
		t.Fatalf("update: %d %s", code, b)
	}

	// Same (now stale) resourceVersion again: conflict.
	code, b = do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img:3", `,"resourceVersion":"`+cur.Metadata.ResourceVersion+`"`))
	if st := decodeStatus(t, b); code != http.StatusConflict || st.Reason != "Conflict" {
		t.Fatalf("stale update: %d %s", code, b)
	}

	code, b = do(t, srv, "PUT", svcs+"/other", svcJSON("hello", "img:3"))
	if code != http.StatusBadRequest {
		t.Fatalf("name mismatch: %d %s", code, b)
	}

	code, b = do(t, srv, "DELETE", svcs+"/hello", "")
	if code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	code, b = do(t, srv, "GET", svcs+"/hello", "")
	if st := decodeStatus(t, b); code != http.StatusNotFound || st.Reason != "NotFound" {
		t.Fatalf("get after delete: %d %s", code, b)
	}
	code, _ = do(t, srv, "DELETE", svcs+"/hello", "")
	if code != http.StatusNotFound {
		t.Fatalf("second delete: %d", code)
	}
}

func TestRejections(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name, method, path, body string
		code                     int
		reason                   string
		field                    string // a cause that must be present
	}{
		{name: "empty image", method: "POST", path: svcs, body: svcJSON("hello", ""), code: 422, reason: "Invalid",
			field: "spec.template.spec.containers[0].image"},
		{name: "invalid name", method: "POST", path: svcs, body: svcJSON("Hello_World", "img"), code: 422, reason: "Invalid",
			field: "metadata.name"},
		{name: "unknown field", method: "POST", path: svcs, body: strings.Replace(svcJSON("hello", "img"), `"image"`, `"imagee"`, 1),
			code: 400, reason: "BadRequest"},
		{name: "malformed json", method: "POST", path: svcs, body: `{"apiVersion":`, code: 400, reason: "BadRequest"},
		{name: "namespace mismatch", method: "POST", path: svcs, body: svcJSON("hello", "img", `,"namespace":"other"`), code: 400, reason: "BadRequest"},
		{name: "kind mismatch", method: "POST", path: BasePath + "/namespaces/default/routes", body: svcJSON("hello", "img"), code: 400, reason: "BadRequest"},
		{name: "revision create without an owner", method: "POST", path: BasePath + "/namespaces/default/revisions",
			body: `{"apiVersion":"serving.knative.dev/v1","kind":"Revision","metadata":{"name":"hello-00001"},"spec":{"containers":[{"image":"img"}]}}`,
			code: 422, reason: "Invalid", field: "metadata.ownerReferences"},
		{name: "unknown resource", method: "GET", path: BasePath + "/namespaces/default/pods", code: 404, reason: "NotFound"},
		{name: "update missing", method: "PUT", path: svcs + "/hello", body: svcJSON("hello", "img"), code: 404, reason: "NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, tc.method, tc.path, tc.body)
			st := decodeStatus(t, b)
			if code != tc.code || int(st.Code) != tc.code || string(st.Reason) != tc.reason {
				t.Fatalf("got %d %s, want %d %s", code, b, tc.code, tc.reason)
			}
			if tc.field != "" {
				found := false
				for _, c := range st.Details.Causes {
					found = found || c.Field == tc.field
				}
				if !found {
					t.Fatalf("cause %q missing: %s", tc.field, b)
				}
			}
		})
	}
	// Nothing was written by any of the failures.
	_, b := do(t, srv, "GET", svcs, "")
	if !strings.Contains(string(b), `"items":[]`) {
		t.Fatalf("failed requests wrote something: %s", b)
	}
}

func TestDryRun(t *testing.T) {
	srv, reg := newServer(t)
	code, b := do(t, srv, "POST", svcs+"?dryRun=All", svcJSON("hello", "img"))
	if code != http.StatusCreated || !strings.Contains(string(b), `"user-container"`) {
		t.Fatalf("dry-run create: %d %s", code, b)
	}
	if _, err := reg.Services().Get(context.Background(), "default", "hello"); err == nil {
		t.Fatal("dry-run create wrote the object")
	}
	code, b = do(t, srv, "POST", svcs+"?dryRun=All", svcJSON("hello", ""))
	if code != 422 {
		t.Fatalf("dry-run must still validate: %d %s", code, b)
	}
	do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	code, b = do(t, srv, "PUT", svcs+"/hello?dryRun=All", svcJSON("hello", "img:2"))
	if code != 200 || !strings.Contains(string(b), "img:2") {
		t.Fatalf("dry-run update: %d %s", code, b)
	}
	got, _ := reg.Services().Get(context.Background(), "default", "hello")
	if got.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatal("dry-run update wrote the object")
	}
	code, _ = do(t, srv, "POST", svcs+"?dryRun=All", svcJSON("hello", "img"))
	if code != http.StatusConflict {
		t.Fatalf("dry-run create of existing: %d", code)
	}
}

func TestAuth(t *testing.T) {
	srv, _ := newServer(t)
	for _, hdr := range []string{"", "Bearer wrong", "Basic " + token} {
		req, _ := http.NewRequest("GET", srv.URL+svcs, nil)
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if st := decodeStatus(t, b); resp.StatusCode != 401 || st.Reason != "Unauthorized" {
			t.Fatalf("%q: %d %s", hdr, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	// An empty token without Insecure fails closed.
	closed := httptest.NewServer(New(registry.New(memstore.New()), Options{}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer closed.Close()
	req, _ := http.NewRequest("GET", closed.URL+svcs, nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("empty token: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestWatch(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	do(t, srv, "POST", svcs, svcJSON("before", "img"))
	_, rev, _ := reg.Services().List(ctx, "default")

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	open := func(query string) *bufio.Scanner {
		req, _ := http.NewRequestWithContext(wctx, "GET", srv.URL+svcs+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("watch: %v %v", resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewScanner(resp.Body)
	}
	fromRev := open("?watch=true&resourceVersion=" + itoa(rev))
	fresh := open("?watch=true")

	do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img:2"))
	do(t, srv, "DELETE", svcs+"/hello", "")

	next := func(sc *bufio.Scanner) (string, string) {
		if !sc.Scan() {
			t.Fatalf("watch ended: %v", sc.Err())
		}
		var ev struct {
			Type   string
			Object v1.Service
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad event %s: %v", sc.Bytes(), err)
		}
		return ev.Type, ev.Object.Metadata.Name + "/" + ev.Object.Spec.Template.Spec.Containers[0].Image
	}
	want := [][2]string{{"ADDED", "hello/img:1"}, {"MODIFIED", "hello/img:2"}, {"DELETED", "hello/img:2"}}
	for i, w := range want {
		if typ, obj := next(fromRev); typ != w[0] || obj != w[1] {
			t.Fatalf("event %d = %s %s, want %v", i, typ, obj, w)
		}
	}
	// Without a resourceVersion the stream starts with the current objects.
	if typ, obj := next(fresh); typ != "ADDED" || obj != "before/img" {
		t.Fatalf("initial event = %s %s", typ, obj)
	}
	if typ, obj := next(fresh); typ != "ADDED" || obj != "hello/img:1" {
		t.Fatalf("first live event = %s %s", typ, obj)
	}

	// Watching one name filters out the others.
	one := func() *bufio.Scanner {
		req, _ := http.NewRequestWithContext(wctx, "GET", srv.URL+svcs+"/solo?watch=true&resourceVersion="+itoa(rev), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewScanner(resp.Body)
	}()
	do(t, srv, "POST", svcs, svcJSON("solo", "img:s"))
	if typ, obj := next(one); typ != "ADDED" || obj != "solo/img:s" {
		t.Fatalf("named watch = %s %s", typ, obj)
	}
}

func itoa(i int64) string { b, _ := json.Marshal(i); return string(b) }

// Revisions belong to the controller, which stamps them; a user may only
// delete one (Knative's user-initiated delete: `kn revision delete`). The
// controller stamps the Configuration's latest revision again if that was
// the one deleted, and a Route still naming a deleted one reports
// RevisionMissing.
func TestRevisionsAreDeleteOnlyForUsers(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	rev := &v1.Revision{}
	rev.Metadata.Namespace, rev.Metadata.Name = "default", "hello-00001"
	rev.Spec.Containers = []v1.Container{{Image: "img"}}
	if _, err := reg.Revisions().Create(ctx, rev); err != nil {
		t.Fatal(err)
	}
	revs := BasePath + "/namespaces/default/revisions"
	body := `{"apiVersion":"serving.knative.dev/v1","kind":"Revision","metadata":{"name":"hello-00001"},"spec":{"containers":[{"image":"other"}]}}`
	if code, b := do(t, srv, "PUT", revs+"/hello-00001", body); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT revision: %d %s, want 405", code, b)
	}
	if code, b := do(t, srv, "POST", revs, body); code != http.StatusUnprocessableEntity {
		t.Errorf("POST revision without a Configuration owning it: %d %s, want 422", code, b)
	}
	if got, err := reg.Revisions().Get(ctx, "default", "hello-00001"); err != nil || got.Spec.Containers[0].Image != "img" {
		t.Fatalf("revision changed by a refused write: %+v, %v", got, err)
	}
	if code, b := do(t, srv, "DELETE", revs+"/hello-00001", ""); code != http.StatusOK {
		t.Fatalf("delete revision: %d %s", code, b)
	}
	if code, _ := do(t, srv, "GET", revs+"/hello-00001", ""); code != http.StatusNotFound {
		t.Fatalf("revision still there after delete: %d", code)
	}
}
