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
