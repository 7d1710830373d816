package unsent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestIs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, err = http.Get("http://" + dead + "/")
	if !Is(err) {
		t.Errorf("Is(%v) = false for a refused connection", err)
	}

	// A server that hangs up after reading the request: it was sent.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	if _, err := http.DefaultClient.Do(req); err == nil || Is(err) {
		t.Errorf("Is(%v) = true for a request the server read", err)
	}
	if Is(fmt.Errorf("wrapped: %w", errors.New("other"))) {
		t.Error("Is of an unrelated error")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestReplayable(t *testing.T) {
	reset := errors.New("read: connection reset by peer")
	for _, tc := range []struct {
		method string
		body   bool
		err    error
		want   bool
	}{
		{http.MethodGet, false, reset, true},
		{http.MethodHead, false, reset, true},
		{http.MethodOptions, false, reset, true},
		{http.MethodTrace, false, reset, true},
		{http.MethodGet, true, reset, false},
		{http.MethodPost, false, reset, false},
		{http.MethodPut, false, reset, false},
		{http.MethodDelete, false, reset, false},
		{http.MethodGet, false, fmt.Errorf("read: %w", timeoutErr{}), false},
	} {
		var body io.Reader
		if tc.body {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(tc.method, "http://peer/", body)
		if got := Replayable(req, tc.err); got != tc.want {
			t.Errorf("Replayable(%s, body %v, %v) = %v, want %v", tc.method, tc.body, tc.err, got, tc.want)
		}
	}
}
