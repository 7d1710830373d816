package unsent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
