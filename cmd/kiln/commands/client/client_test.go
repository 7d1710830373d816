package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// deadServer is the URL of a port nothing listens on.
func deadServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// A client given several apiservers sends a request that cannot reach the
// first to the next, and keeps using the one that answered.
func TestFailover(t *testing.T) {
	var hits atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer live.Close()
	dead := deadServer(t)
	c := New(dead+", "+live.URL+"/", "")
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		resp, err := c.do(context.Background(), method, "/apis/serving.knative.dev/v1/namespaces/default/services", nil, map[string]string{})
		if err != nil {
			t.Fatalf("%s with %s dead: %v", method, dead, err)
		}
		resp.Body.Close()
	}
	if hits.Load() != 3 || c.bases[c.cur.Load()] != live.URL {
		t.Errorf("live server answered %d of 3, current %s", hits.Load(), c.bases[c.cur.Load()])
	}
}

// With every apiserver unreachable, the error names each and is
// Unavailable.
func TestAllServersDown(t *testing.T) {
	a, b := deadServer(t), deadServer(t)
	_, err := New(a+","+b, "").do(context.Background(), http.MethodGet, "/version", nil, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("err = %v, want Unavailable naming %s and %s", err, a, b)
	}
}

func TestCheckServers(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://127.0.0.1:7070":         true,
		"https://a:7070, https://b:7070": true,
		"":                               false,
		"127.0.0.1:7070":                 false,
		"https://a:7070,ftp://b":         false,
		" , ":                            false,
	} {
		if err := CheckServers(in); (err == nil) != ok {
			t.Errorf("CheckServers(%q) = %v, want ok=%v", in, err, ok)
		} else if err != nil && !strings.Contains(err.Error(), "--server") {
			t.Errorf("CheckServers(%q) = %v, want it to name --server", in, err)
		}
	}
}
