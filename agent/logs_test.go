package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/shutdown"
)

func TestTailOffset(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		n         int64
		want      string
	}{
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"more than there are", "a\nb\n", 5, "a\nb\n"},
		{"no final newline", "a\nb\nc", 1, "c"},
		{"zero", "a\nb\n", 0, ""},
		{"empty", "", 3, ""},
		{"long lines", strings.Repeat("x", 3*logTailChunk) + "\n" + strings.Repeat("y", logTailChunk+7) + "\n", 1, strings.Repeat("y", logTailChunk+7) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.log")
			if err := os.WriteFile(p, []byte(tc.log), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			off, err := tailOffset(f, tc.n)
			if err != nil || tc.log[off:] != tc.want {
				t.Fatalf("offset %d (%q), %v; want %q", off, tc.log[off:], err, tc.want)
			}
		})
	}
}

func TestLogsHandler(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "logs", "hello-abcde.log")
	if err := os.WriteFile(logPath, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", sidecarID("hello-abcde", "logger")+".log"), []byte("side\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(LogsHandler(dir))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/logs/hello-abcde", 200, "one\ntwo\n"},
		{"/logs/hello-abcde?tailLines=1", 200, "two\n"},
		{"/logs/hello-abcde?limitBytes=5", 200, "one\nt"},
		{"/logs/hello-abcde/logger", 200, "side\n"},
		{"/logs/hello-abcde/nope", 404, "no log"},
		{"/logs/other", 404, "no log"},
		{"/logs/Bad_Name", 400, "not a DNS label"},
		{"/logs/hello-abcde?tailLines=x", 400, "tailLines"},
	} {
		code, body := get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}

	// follow streams what is appended, and ends when the log is removed.
	LogFollowInterval = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/hello-abcde?follow=true&tailLines=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "three\n" {
		t.Fatalf("followed %q, %v", buf, err)
	}
	os.Remove(logPath)
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after removal: %q, %v", rest, err)
	}
}

// A followed log ends when its server begins to stop, so the node API's
// graceful stop does not wait on followers.
func TestFollowEndsWhenServerStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(p, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stopping := make(chan struct{})
	ctx := shutdown.With(context.Background(), stopping)
	done := make(chan error, 1)
	var out strings.Builder
	go func() { done <- copyLog(ctx, &out, f, p, LogOptions{TailLines: -1, Follow: true}) }()
	select {
	case err := <-done:
		t.Fatalf("follow ended before the server stopped: %v", err)
	case <-time.After(3 * LogFollowInterval):
	}
	close(stopping)
	if err := <-done; err != nil || out.String() != "a\n" {
		t.Errorf("follow: %q %v", out.String(), err)
	}
}
