package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// TestOnEtcd runs the create/update/conflict/watch path against a real
// embedded etcd, whose revisions and watch-from-revision semantics the fake
// only imitates.
func TestOnEtcd(t *testing.T) {
	srv, reg := newServerOn(t, testenv.StartEtcd(t))
	code, b := do(t, srv, "POST", svcs, svcJSON("hello", "img:1"))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	cur, err := reg.Services().Get(context.Background(), "default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	rv := cur.Metadata.ResourceVersion
	code, b = do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img:2", `,"resourceVersion":"`+rv+`"`))
	if code != http.StatusOK || !strings.Contains(string(b), `"generation":2`) {
		t.Fatalf("update: %d %s", code, b)
	}
	code, b = do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img:3", `,"resourceVersion":"`+rv+`"`))
	if code != http.StatusConflict {
		t.Fatalf("stale update: %d %s", code, b)
	}
	// A watch from the create's revision replays the update.
	req, _ := http.NewRequest("GET", srv.URL+svcs+"/hello?watch=true&resourceVersion="+rv, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	n, _ := resp.Body.Read(buf)
	if line := string(buf[:n]); !strings.HasPrefix(line, `{"type":"MODIFIED"`) || !strings.Contains(line, "img:2") {
		t.Fatalf("watch replay: %s", line)
	}
}

// TestCompactionOnEtcd: after etcd compacts past a resourceVersion, an
// exact list at it answers 410 Expired and a watch from it ends with an
// ERROR event carrying the same, which makes client-go relist.
func TestCompactionOnEtcd(t *testing.T) {
	st := testenv.StartEtcd(t)
	srv, reg := newServerOn(t, st)
	do(t, srv, "POST", svcs, svcJSON("a", "img:1"))
	a, err := reg.Services().Get(context.Background(), "default", "a")
	if err != nil {
		t.Fatal(err)
	}
	rv := a.Metadata.ResourceVersion
	do(t, srv, "POST", svcs, svcJSON("b", "img:1"))
	code, b := do(t, srv, "GET", svcs+"?resourceVersion="+rv+"&resourceVersionMatch=Exact", "")
	if code != http.StatusOK || strings.Contains(string(b), `"name":"b"`) {
		t.Fatalf("exact list before compaction: %d %s", code, b)
	}
	do(t, srv, "POST", svcs, svcJSON("c", "img:1"))
	_, cur, _ := reg.Services().List(context.Background(), "default")
	if err := st.Compact(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	code, b = do(t, srv, "GET", svcs+"?resourceVersion="+rv+"&resourceVersionMatch=Exact", "")
	wantStatus(t, code, b, http.StatusGone, "Expired", "The resourceVersion for the provided list is too old.")
	code, b = do(t, srv, "GET", svcs+"?watch=true&resourceVersion="+rv, "")
	if code != http.StatusOK || !strings.HasPrefix(string(b), `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The resourceVersion for the provided watch is too old.","reason":"Expired","code":410}}`) {
		t.Fatalf("watch from a compacted revision: %d %s", code, b)
	}
}
