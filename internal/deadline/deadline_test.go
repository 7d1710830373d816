package deadline

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// slowClient sends a chunked request and then one body byte per interval
// until the server closes the connection or stop passes; it returns the
// status line it read and how long the connection stayed open.
func slowClient(t *testing.T, addr string, interval, stop time.Duration) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(c).ReadString('\n')
		status <- strings.TrimSpace(line)
		// Then wait for the close.
		_, _ = io.Copy(io.Discard, c)
		status <- ""
	}()
	var got string
	for time.Since(begin) < stop {
		if _, err := fmt.Fprintf(c, "1\r\na\r\n"); err != nil {
			break
		}
		select {
		case s := <-status:
			if got == "" {
				got = s
				continue
			}
			return got, time.Since(begin)
		case <-time.After(interval):
		}
	}
	select {
	case s := <-status:
		if got == "" {
			got = s
			<-status
		}
	case <-time.After(time.Second):
	}
	return got, time.Since(begin)
}

// A body trickling in is cut at the deadline: the handler's read fails and
// the connection does not stay open.
func TestBodyDeadline(t *testing.T) {
	readErr := make(chan error, 1)
	srv := httptest.NewServer(Body(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		http.Error(w, "bad body", http.StatusBadRequest)
	}), 300*time.Millisecond, 1<<20))
	defer srv.Close()
	status, open := slowClient(t, srv.Listener.Addr().String(), 100*time.Millisecond, 5*time.Second)
	if err := <-readErr; err == nil {
		t.Fatal("a body trickling past the deadline was read whole")
	}
	if !strings.Contains(status, "400") || open > 3*time.Second {
		t.Fatalf("status %q, connection open %v", status, open)
	}
}

// Within the deadline a body is read whole, a too large one refused, and
// the connection is reused for the next request.
func TestBodyLimitAndReuse(t *testing.T) {
	srv := httptest.NewServer(Body(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	}), time.Second, 10))
	defer srv.Close()
	for i, tc := range []struct {
		body string
		code int
	}{{"hello", 200}, {"hello", 200}, {strings.Repeat("x", 11), 413}} {
		resp, err := http.Post(srv.URL, "text/plain", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, tc.code)
		}
	}
	// Wait past the deadline: a lifted deadline must not break the idle
	// connection's next request.
	time.Sleep(1200 * time.Millisecond)
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("again"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the deadline: %d", resp.StatusCode)
	}
}

// A handler that answers without reading the body does not leave the
// server draining it at the client's pace.
func TestDropUnreadBody(t *testing.T) {
	srv := httptest.NewServer(Drop(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	})))
	defer srv.Close()
	status, open := slowClient(t, srv.Listener.Addr().String(), 100*time.Millisecond, 5*time.Second)
	if !strings.Contains(status, "403") || open > 3*time.Second {
		t.Fatalf("status %q, connection open %v", status, open)
	}
}
