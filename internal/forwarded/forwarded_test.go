package forwarded

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"
)

// A request through a proxy using Keep reaches the upstream with the
// edge's Forwarded, proto and host, and its X-Forwarded-For extended by
// the hop; without them, the hop's own values.
func TestKeep(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		Keep(pr)
	}})
	defer proxy.Close()

	send := func(h http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, proxy.URL, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	send(http.Header{
		"Forwarded":         {"for=203.0.113.7;proto=https"},
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"hello.default.example.com"},
	})
	if v := got.Values("Forwarded"); !slices.Equal(v, []string{"for=203.0.113.7;proto=https"}) {
		t.Errorf("Forwarded = %q", v)
	}
	if v := got.Get("X-Forwarded-For"); v != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the edge's client then this hop's peer", v)
	}
	if got.Get("X-Forwarded-Proto") != "https" || got.Get("X-Forwarded-Host") != "hello.default.example.com" {
		t.Errorf("proto %q host %q, want the edge's", got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-Host"))
	}

	send(http.Header{})
	if got.Get("Forwarded") != "" || got.Get("X-Forwarded-For") != "127.0.0.1" || got.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("without an edge: %v", got)
	}
}
