package apiserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/auth"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

// send is do with headers.
func send(t *testing.T, srv interface{ Client() *http.Client }, base, method, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// svcWithLabels is a Service manifest with labels.
func svcWithLabels(name string, labels string) string {
	return svcJSON(name, "img:1", `,"labels":{`+labels+`}`)
}

type listResp struct {
	Metadata ListMeta
	Items    []v1.Service
}

func names(t *testing.T, b []byte) (listResp, []string) {
	t.Helper()
	var l listResp
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("not a list: %s", b)
	}
	out := []string{}
	for _, s := range l.Items {
		out = append(out, s.Metadata.Name)
	}
	return l, out
}

// TestErrorShapes compares whole Status bodies with what a kube-apiserver
// with Knative's CRDs answers.
func TestErrorShapes(t *testing.T) {
	srv, _ := newServer(t)
	do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"not found", "GET", svcs + "/nope", "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services.serving.knative.dev \"nope\" not found","reason":"NotFound","details":{"name":"nope","group":"serving.knative.dev","kind":"services"},"code":404}`},
		{"already exists", "POST", svcs, svcJSON("hello", "img:1"),
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services.serving.knative.dev \"hello\" already exists","reason":"AlreadyExists","details":{"name":"hello","group":"serving.knative.dev","kind":"services"},"code":409}`},
		{"conflict", "PUT", svcs + "/hello", svcJSON("hello", "img:2", `,"resourceVersion":"1"`),
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on services.serving.knative.dev \"hello\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"hello","group":"serving.knative.dev","kind":"services"},"code":409}`},
		{"invalid", "POST", svcs, svcJSON("bad", ""),
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service.serving.knative.dev \"bad\" is invalid: validation failed: missing field(s): spec.template.spec.containers[0].image","reason":"Invalid","details":{"name":"bad","group":"serving.knative.dev","kind":"Service","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.template.spec.containers[0].image"}]},"code":422}`},
		{"domain mapping not found", "GET", AlphaPath + "/namespaces/default/domainmappings/x.example.com", "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"domainmappings.serving.knative.dev \"x.example.com\" not found","reason":"NotFound","details":{"name":"x.example.com","group":"serving.knative.dev","kind":"domainmappings"},"code":404}`},
		{"unknown resource", "GET", BasePath + "/namespaces/default/widgets", "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}`},
		{"strategic merge patch", "PATCH", svcs + "/hello", "{}",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml","reason":"UnsupportedMediaType","code":415}`},
		{"unsupported body", "POST", svcs, "hello",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf","reason":"UnsupportedMediaType","code":415}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			switch tc.name {
			case "strategic merge patch":
				ct = "application/strategic-merge-patch+json"
			case "unsupported body":
				ct = "text/plain"
			}
			_, b := send(t, srv, srv.URL, tc.method, tc.path, tc.body, "Content-Type", ct)
			var got, want map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			_ = json.Unmarshal([]byte(tc.want), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("status\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestListSelectors(t *testing.T) {
	srv, _ := newServer(t)
	for _, s := range []string{svcWithLabels("a", `"app":"web","tier":"front"`), svcWithLabels("b", `"app":"web"`), svcWithLabels("c", `"app":"db"`)} {
		if code, b := do(t, srv, "POST", svcs, s); code != http.StatusCreated {
			t.Fatalf("%d %s", code, b)
		}
	}
	tests := []struct {
		query    string
		want     string
		wantCode int
		wantMsg  string
	}{
		{"labelSelector=app%3Dweb", "[a b]", 200, ""},
		{"labelSelector=app%3Dweb,tier!%3Dfront", "[b]", 200, ""},
		{"labelSelector=app+in+(db,cache)", "[c]", 200, ""},
		{"labelSelector=!tier", "[b c]", 200, ""},
		{"labelSelector=app%3Dnone", "[]", 200, ""},
		{"fieldSelector=metadata.name%3Db", "[b]", 200, ""},
		{"fieldSelector=metadata.name!%3Db,metadata.namespace%3Ddefault", "[a c]", 200, ""},
		{"fieldSelector=spec.foo%3Dx", "", 400, "field label not supported: spec.foo"},
		{"labelSelector=app%3D%3D%3D", "", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			code, b := do(t, srv, "GET", svcs+"?"+tc.query, "")
			if tc.wantCode != 200 {
				st := decodeStatus(t, b)
				if code != tc.wantCode || st.Reason != "BadRequest" || (tc.wantMsg != "" && st.Message != tc.wantMsg) {
					t.Fatalf("%d %s", code, b)
				}
				return
			}
			if _, got := names(t, b); code != 200 || fmt.Sprint(got) != tc.want {
				t.Fatalf("%d %v, want %s", code, got, tc.want)
			}
		})
	}
	// Across namespaces too, and on the DomainMapping versions.
	if code, b := do(t, srv, "GET", BasePath+"/services?labelSelector=app%3Ddb", ""); code != 200 || !strings.Contains(string(b), `"name":"c"`) || strings.Contains(string(b), `"name":"a"`) {
		t.Fatalf("cluster list: %d %s", code, b)
	}
	if code, b := do(t, srv, "GET", BetaPath+"/namespaces/default/domainmappings?fieldSelector=spec.x%3D1", ""); code != 400 {
		t.Fatalf("domainmapping field selector: %d %s", code, b)
	}
}

func TestPagination(t *testing.T) {
	srv, _ := newServer(t)
	for _, n := range []string{"e", "a", "d", "b", "c"} {
		do(t, srv, "POST", svcs, svcJSON(n, "img:1"))
	}
	var got []string
	var remaining []string
	q := "limit=2"
	pages := 0
	for {
		code, b := do(t, srv, "GET", svcs+"?"+q, "")
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		l, ns := names(t, b)
		got = append(got, ns...)
		pages++
		if l.Metadata.RemainingItemCount != nil {
			remaining = append(remaining, fmt.Sprint(*l.Metadata.RemainingItemCount))
		}
		if pages == 1 {
			// A create between pages is not seen: every page comes from
			// the first page's snapshot.
			do(t, srv, "POST", svcs, svcJSON("bb", "img:1"))
		}
		if l.Metadata.Continue == "" {
			break
		}
		q = "limit=2&continue=" + url.QueryEscape(l.Metadata.Continue)
	}
	if fmt.Sprint(got) != "[a b c d e]" || pages != 3 || fmt.Sprint(remaining) != "[3 1]" {
		t.Fatalf("pages %d items %v remaining %v", pages, got, remaining)
	}
	// With a selector, only matches fill a page and nothing is counted.
	code, b := do(t, srv, "GET", svcs+"?limit=1&fieldSelector=metadata.name!%3Da", "")
	if l, ns := names(t, b); code != 200 || fmt.Sprint(ns) != "[b]" || l.Metadata.Continue == "" || l.Metadata.RemainingItemCount != nil {
		t.Fatalf("selector page: %d %s", code, b)
	}
	for _, bad := range []string{"garbage!", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJ4In0"} {
		code, b := do(t, srv, "GET", svcs+"?limit=2&continue="+bad, "")
		if st := decodeStatus(t, b); code != 400 || st.Reason != "BadRequest" || !strings.HasPrefix(st.Message, "invalid continue token: continue key is not valid") {
			t.Fatalf("bad token %q: %d %s", bad, code, b)
		}
	}
}

func TestResourceVersionMatch(t *testing.T) {
	st := memstore.New()
	srv, reg := newServerOn(t, st)
	do(t, srv, "POST", svcs, svcJSON("a", "img:1"))
	_, b := do(t, srv, "GET", svcs, "")
	l, _ := names(t, b)
	rv1 := l.Metadata.ResourceVersion
	do(t, srv, "POST", svcs, svcJSON("b", "img:1"))
	tests := []struct {
		query    string
		want     string
		wantCode int
		reason   string
	}{
		{"resourceVersion=" + rv1 + "&resourceVersionMatch=Exact", "[a]", 200, ""},
		{"resourceVersion=" + rv1 + "&limit=5", "[a]", 200, ""}, // legacy: limited = exact
		{"resourceVersion=" + rv1 + "&resourceVersionMatch=NotOlderThan", "[a b]", 200, ""},
		{"resourceVersion=0", "[a b]", 200, ""},
		{"resourceVersion=999&resourceVersionMatch=NotOlderThan", "", 504, "Timeout"},
		{"resourceVersion=999&resourceVersionMatch=Exact", "", 504, "Timeout"},
		{"resourceVersion=0&resourceVersionMatch=Exact", "", 422, "Invalid"},
		{"resourceVersionMatch=Exact", "", 422, "Invalid"},
		{"resourceVersion=1&resourceVersionMatch=Sometime", "", 422, "Invalid"},
		{"resourceVersion=x", "", 400, "BadRequest"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			code, b := do(t, srv, "GET", svcs+"?"+tc.query, "")
			if tc.wantCode != 200 {
				if st := decodeStatus(t, b); code != tc.wantCode || string(st.Reason) != tc.reason {
					t.Fatalf("%d %s", code, b)
				}
				return
			}
			if _, got := names(t, b); code != 200 || fmt.Sprint(got) != tc.want {
				t.Fatalf("%d %v, want %s", code, got, tc.want)
			}
		})
	}
	// Once compacted past rv1+1, an exact read or a watch from rv1 expires.
	do(t, srv, "POST", svcs, svcJSON("c", "img:1"))
	_, cur, _ := reg.Services().List(t.Context(), "default")
	if err := st.Compact(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	code, b := do(t, srv, "GET", svcs+"?resourceVersion="+rv1+"&resourceVersionMatch=Exact", "")
	wantStatus(t, code, b, 410, "Expired", "The resourceVersion for the provided list is too old.")
	code, b = do(t, srv, "GET", svcs+"?watch=true&resourceVersion="+rv1, "")
	var ev struct {
		Type   string
		Object Status
	}
	if err := json.Unmarshal(b, &ev); code != 200 || err != nil || ev.Type != "ERROR" || ev.Object.Code != 410 || ev.Object.Reason != "Expired" {
		t.Fatalf("watch from a compacted revision: %d %s", code, b)
	}
}

// watchLines opens a watch and returns its events as they arrive.
func watchLines(t *testing.T, base, path string) <-chan map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	// Closed before the server (cleanups run last-in first-out), whose
	// Close waits for open connections.
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan map[string]any, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				out <- ev
			}
		}
	}()
	return out
}

func next(t *testing.T, c <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case ev, ok := <-c:
		if !ok {
			t.Fatal("watch ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	return nil
}

func evName(ev map[string]any) string {
	md, _ := ev["object"].(map[string]any)["metadata"].(map[string]any)
	return fmt.Sprintf("%s %v", ev["type"], md["name"])
}

func TestWatchSelectors(t *testing.T) {
	srv, _ := newServer(t)
	do(t, srv, "POST", svcs, svcWithLabels("a", `"app":"web"`))
	do(t, srv, "POST", svcs, svcWithLabels("b", `"app":"db"`))
	_, b := do(t, srv, "GET", svcs, "")
	l, _ := names(t, b)
	// From a resourceVersion: only changes, filtered.
	w := watchLines(t, srv.URL, svcs+"?watch=true&labelSelector=app%3Dweb&resourceVersion="+l.Metadata.ResourceVersion)
	// Without: the current matches first.
	w0 := watchLines(t, srv.URL, svcs+"?watch=true&labelSelector=app%3Dweb")
	if got := evName(next(t, w0)); got != "ADDED a" {
		t.Fatalf("initial: %s", got)
	}
	do(t, srv, "PUT", svcs+"/b", svcWithLabels("b", `"app":"web"`))  // starts matching
	do(t, srv, "PUT", svcs+"/a", svcWithLabels("a", `"app":"gone"`)) // stops matching
	do(t, srv, "PUT", svcs+"/b", svcWithLabels("b", `"app":"web","x":"y"`))
	do(t, srv, "DELETE", svcs+"/b", "")
	for _, c := range []<-chan map[string]any{w, w0} {
		var got []string
		for range 4 {
			got = append(got, evName(next(t, c)))
		}
		if fmt.Sprint(got) != "[ADDED b DELETED a MODIFIED b DELETED b]" {
			t.Fatalf("events %v", got)
		}
	}
}

func TestWatchBookmarksAndTimeout(t *testing.T) {
	old := bookmarkInterval
	bookmarkInterval = 100 * time.Millisecond
	defer func() { bookmarkInterval = old }()
	srv, _ := newServer(t)
	do(t, srv, "POST", svcs, svcJSON("a", "img:1"))
	start := time.Now()
	w := watchLines(t, srv.URL, svcs+"?watch=true&allowWatchBookmarks=true&timeoutSeconds=1")
	var types []string
	var lastRV string
	for ev := range w {
		types = append(types, ev["type"].(string))
		if ev["type"] == "BOOKMARK" {
			obj := ev["object"].(map[string]any)
			md := obj["metadata"].(map[string]any)
			if obj["kind"] != "Service" || obj["apiVersion"] != "serving.knative.dev/v1" || len(md) != 1 {
				t.Fatalf("bookmark object %v", obj)
			}
			lastRV = md["resourceVersion"].(string)
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timeoutSeconds=1 ended the watch after %v", d)
	}
	if len(types) < 4 || types[0] != "ADDED" || types[1] != "BOOKMARK" || types[len(types)-1] != "BOOKMARK" || lastRV == "" {
		t.Fatalf("events %v (last rv %q)", types, lastRV)
	}
	// Without allowWatchBookmarks there are none.
	for ev := range watchLines(t, srv.URL, svcs+"?watch=true&timeoutSeconds=1") {
		if ev["type"] == "BOOKMARK" {
			t.Fatal("bookmark without allowWatchBookmarks")
		}
	}
	// sendInitialEvents ends the initial ADDED with the annotated bookmark.
	w = watchLines(t, srv.URL, svcs+"?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
	if got := evName(next(t, w)); got != "ADDED a" {
		t.Fatalf("initial %s", got)
	}
	ev := next(t, w)
	if ann := ev["object"].(map[string]any)["metadata"].(map[string]any)["annotations"]; ev["type"] != "BOOKMARK" || fmt.Sprint(ann) != "map[k8s.io/initial-events-end:true]" {
		t.Fatalf("initial-events-end bookmark: %v", ev)
	}
	code, b := do(t, srv, "GET", svcs+"?watch=true&sendInitialEvents=true", "")
	if st := decodeStatus(t, b); code != 422 || st.Reason != "Invalid" {
		t.Fatalf("sendInitialEvents without NotOlderThan: %d %s", code, b)
	}
}

func TestGenerateName(t *testing.T) {
	srv, _ := newServer(t)
	seen := map[string]bool{}
	for range 3 {
		code, b := do(t, srv, "POST", svcs, svcJSON("", "img:1", `,"generateName":"hello-"`))
		var s v1.Service
		_ = json.Unmarshal(b, &s)
		if code != 201 || !regexp.MustCompile(`^hello-[a-z0-9]{5}$`).MatchString(s.Metadata.Name) || seen[s.Metadata.Name] {
			t.Fatalf("%d %s", code, b)
		}
		seen[s.Metadata.Name] = true
	}
	code, b := do(t, srv, "POST", svcs, svcJSON("", "img:1", `,"generateName":"Bad_"`))
	st := decodeStatus(t, b)
	if code != 422 || st.Reason != "Invalid" || len(st.Details.Causes) != 2 || st.Details.Causes[0].Field != "metadata.generateName" ||
		st.Details.Causes[1].Field != "metadata.name" || !regexp.MustCompile(`^Service.serving.knative.dev "Bad_[a-z0-9]{5}" is invalid: \[metadata.generateName: Invalid value: "Bad_": a lowercase RFC 1123 subdomain`).MatchString(st.Message) {
		t.Fatalf("%d %s", code, b)
	}
}

func TestWritesDryRunDeleteOptions(t *testing.T) {
	srv, reg := newServer(t)
	code, b := do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	var created v1.Service
	_ = json.Unmarshal(b, &created)
	if code != 201 {
		t.Fatalf("%d %s", code, b)
	}
	// A Configuration the Service owns, as the controller makes it.
	cfg := `{"apiVersion":"serving.knative.dev/v1","kind":"Configuration","metadata":{"name":"hello","ownerReferences":[{"apiVersion":"serving.knative.dev/v1","kind":"Service","name":"hello","uid":"` +
		string(created.Metadata.UID) + `","controller":true}]},"spec":{"template":{"spec":{"containers":[{"image":"img:1"}]}}}}`
	if code, b := do(t, srv, "POST", BasePath+"/namespaces/default/configurations", cfg); code != 201 {
		t.Fatalf("%d %s", code, b)
	}
	tests := []struct {
		name, method, query, body string
		wantCode                  int
		wantMsg                   string
	}{
		{"dry-run patch", "PATCH", "?dryRun=All", `{"spec":{"template":{"spec":{"containers":[{"image":"img:9"}]}}}}`, 200, ""},
		{"dry-run delete", "DELETE", "?dryRun=All", "", 200, ""},
		{"uid precondition", "DELETE", "", `{"preconditions":{"uid":"other"}}`, 409,
			`Operation cannot be fulfilled on Service.serving.knative.dev "hello": the UID in the precondition (other) does not match the UID in record (` + string(created.Metadata.UID) + `). The object might have been deleted and then recreated`},
		{"resourceVersion precondition", "DELETE", "", `{"preconditions":{"resourceVersion":"1"}}`, 409,
			`Operation cannot be fulfilled on Service.serving.knative.dev "hello": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (` + created.Metadata.ResourceVersion + `). The object might have been modified`},
		{"bad policy", "DELETE", "?propagationPolicy=Sometimes", "", 422,
			`DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sometimes": supported values: "Foreground", "Background", "Orphan", "nil"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			if tc.method == "PATCH" {
				ct = "application/merge-patch+json"
			}
			code, b := send(t, srv, srv.URL, tc.method, svcs+"/hello"+tc.query, tc.body, "Content-Type", ct)
			if tc.wantCode != 200 {
				if st := decodeStatus(t, b); code != tc.wantCode || st.Message != tc.wantMsg {
					t.Fatalf("%d %s", code, b)
				}
				return
			}
			if code != 200 {
				t.Fatalf("%d %s", code, b)
			}
			cur, err := reg.Services().Get(t.Context(), "default", "hello")
			if err != nil || cur.Spec.Template.Spec.Containers[0].Image != "img:1" || cur.Metadata.ResourceVersion != created.Metadata.ResourceVersion {
				t.Fatalf("dry run changed the object: %+v %v", cur, err)
			}
		})
	}
	// Orphan: the delete answers Kubernetes' Success Status and leaves the
	// child unowned.
	code, b = do(t, srv, "DELETE", svcs+"/hello", `{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Orphan"}`)
	want := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"hello","group":"serving.knative.dev","kind":"services","uid":"` + string(created.Metadata.UID) + `"}}`
	if code != 200 || strings.TrimSpace(string(b)) != want {
		t.Fatalf("delete: %d %s\nwant %s", code, b, want)
	}
	if _, err := reg.Services().Get(t.Context(), "default", "hello"); err == nil {
		t.Fatal("service still there")
	}
	c, err := reg.Configurations().Get(t.Context(), "default", "hello")
	if err != nil || len(c.Metadata.OwnerReferences) != 0 {
		t.Fatalf("orphaned configuration: %+v %v", c, err)
	}
}

// TestStatusSubresource checks writes to .../status as Kubernetes serves a
// custom resource's status subresource: only status is taken, with a CAS
// on the stored resourceVersion.
func TestStatusSubresource(t *testing.T) {
	srv, reg := newServer(t)
	do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	code, b := do(t, srv, "GET", svcs+"/hello/status", "")
	if code != 200 || !strings.Contains(string(b), `"kind":"Service"`) {
		t.Fatalf("get status: %d %s", code, b)
	}
	stored := func() *v1.Service {
		t.Helper()
		svc, err := reg.Services().Get(t.Context(), "default", "hello")
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	before := stored()

	// A patch of spec and status changes only status.
	code, b = send(t, srv, srv.URL, "PATCH", svcs+"/hello/status",
		`{"metadata":{"labels":{"x":"y"}},"spec":{"template":{"spec":{"containers":[{"image":"img:9"}]}}},"status":{"url":"http://hello.default.example.com","observedGeneration":1}}`,
		"Content-Type", "application/merge-patch+json")
	if code != 200 {
		t.Fatalf("patch status: %d %s", code, b)
	}
	after := stored()
	if after.Status.URL != "http://hello.default.example.com" || after.Status.ObservedGeneration != 1 ||
		after.Spec.Template.Spec.Containers[0].Image != "img:1" || after.Metadata.Labels["x"] != "" ||
		after.Metadata.Generation != before.Metadata.Generation || after.Metadata.ResourceVersion == before.Metadata.ResourceVersion {
		t.Fatalf("after status patch: %+v %+v\n%s", after.Metadata, after.Status, b)
	}

	// A PUT takes the status of the object sent.
	put := svcJSON("hello", "img:7", `,"resourceVersion":"`+after.Metadata.ResourceVersion+`"`)
	put = strings.TrimSuffix(put, "}") + `,"status":{"url":"http://other.example.com"}}`
	if code, b := do(t, srv, "PUT", svcs+"/hello/status", put); code != 200 {
		t.Fatalf("put status: %d %s", code, b)
	}
	if got := stored(); got.Status.URL != "http://other.example.com" || got.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatalf("after status put: %+v %+v", got.Spec, got.Status)
	}

	for _, tc := range []struct {
		name, method, path, ctype, body string
		code                            int
	}{
		{"stale resourceVersion", "PUT", "/hello/status", "application/json", put, 409},
		{"dry run", "PATCH", "/hello/status?dryRun=All", "application/merge-patch+json", `{"status":{"url":"http://dry.example.com"}}`, 200},
		{"strategic merge", "PATCH", "/hello/status", "application/strategic-merge-patch+json", `{"status":{}}`, 415},
		{"unknown field", "PATCH", "/hello/status", "application/merge-patch+json", `{"status":{"bogus":1}}`, 400},
		{"other name", "PUT", "/hello/status", "application/json", svcJSON("other", "img:1"), 400},
		{"missing", "PATCH", "/nope/status", "application/merge-patch+json", `{"status":{}}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := send(t, srv, srv.URL, tc.method, svcs+tc.path, tc.body, "Content-Type", tc.ctype)
			if code != tc.code {
				t.Fatalf("%d, want %d: %s", code, tc.code, b)
			}
			if got := stored(); got.Status.URL != "http://other.example.com" {
				t.Fatalf("status changed: %+v", got.Status)
			}
		})
	}
	if code, _ := do(t, srv, "GET", BasePath+"/namespaces/default/routes/nope/status", ""); code != 404 {
		t.Fatalf("missing route status: %d", code)
	}
}

func TestPatch(t *testing.T) {
	srv, _ := newServer(t)
	do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	tests := []struct {
		name, ct, path, body string
		wantCode             int
		wantImage            string
	}{
		{"merge", "application/merge-patch+json", "/hello", `{"spec":{"template":{"spec":{"containers":[{"image":"img:2"}]}}}}`, 200, "img:2"},
		{"json patch", "application/json-patch+json", "/hello", `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"img:3"}]`, 200, "img:3"},
		{"json patch test fails", "application/json-patch+json", "/hello", `[{"op":"test","path":"/metadata/name","value":"other"}]`, 422, ""},
		{"stale resourceVersion", "application/merge-patch+json", "/hello", `{"metadata":{"resourceVersion":"1"}}`, 409, ""},
		{"invalid result", "application/merge-patch+json", "/hello", `{"spec":{"template":{"spec":{"containers":[{"image":""}]}}}}`, 422, ""},
		{"unknown field", "application/merge-patch+json", "/hello", `{"spec":{"bogus":1}}`, 400, ""},
		{"missing", "application/merge-patch+json", "/nope", `{}`, 404, ""},
		{"strategic", "application/strategic-merge-patch+json", "/hello", `{}`, 415, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := send(t, srv, srv.URL, "PATCH", svcs+tc.path, tc.body, "Content-Type", tc.ct)
			if code != tc.wantCode {
				t.Fatalf("%d %s", code, b)
			}
			if tc.wantImage != "" {
				var s v1.Service
				_ = json.Unmarshal(b, &s)
				if s.Spec.Template.Spec.Containers[0].Image != tc.wantImage {
					t.Fatalf("patched %s", b)
				}
			}
		})
	}
}

func TestCreatorAnnotations(t *testing.T) {
	srv, reg := newServer(t)
	alice := issueToken(t, http.DefaultClient, srv.URL, auth.TokenSpec{Subject: "alice", Namespace: "default", Role: auth.RoleEdit}).Status.Token
	forged := `,"annotations":{"serving.knative.dev/creator":"mallory","serving.knative.dev/lastModifier":"mallory"}`
	if code, b := do(t, srv, "POST", svcs, svcJSON("hello", "img:1", forged)); code != 201 {
		t.Fatalf("%d %s", code, b)
	}
	ann := func() string {
		s, err := reg.Services().Get(t.Context(), "default", "hello")
		if err != nil {
			t.Fatal(err)
		}
		return s.Metadata.Annotations[v1.CreatorAnnotation] + "/" + s.Metadata.Annotations[v1.LastModifierAnnotation]
	}
	if got := ann(); got != "admin/admin" {
		t.Fatalf("after create: %s", got)
	}
	// alice changes only metadata: she is not the last modifier, and
	// cannot rewrite the annotations.
	if code, b := call(t, http.DefaultClient, srv.URL, alice, "PUT", svcs+"/hello", svcJSON("hello", "img:1", forged)); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if got := ann(); got != "admin/admin" {
		t.Fatalf("after metadata update: %s", got)
	}
	if code, b := call(t, http.DefaultClient, srv.URL, alice, "PUT", svcs+"/hello", svcJSON("hello", "img:2")); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if got := ann(); got != "admin/alice" {
		t.Fatalf("after spec update: %s", got)
	}
}

func TestYAMLBody(t *testing.T) {
	srv, _ := newServer(t)
	y := "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: fromyaml\nspec:\n  template:\n    spec:\n      containers:\n      - image: img:1\n"
	if code, b := send(t, srv, srv.URL, "POST", svcs, y, "Content-Type", "application/yaml"); code != 201 {
		t.Fatalf("%d %s", code, b)
	}
}
