package deadline

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Drop wraps h so that a request whose body h did not read to its end
// leaves no work behind: the connection's read deadline is set to now when
// h returns. Without it net/http drains up to 256 KiB of the rest at the
// client's pace before reusing the connection, so a client sending a byte
// every few seconds would hold it long after h gave up (h's own timeout,
// e.g. a revision's timeoutSeconds, bounds the request itself). The
// connection is closed instead; a body read to EOF keeps it reusable.
func Drop(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &tracked{ReadCloser: r.Body}
		r.Body = b
		defer func() {
			if !b.done() {
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// Body wraps h so that a request body must arrive within d and be at most
// limit bytes: the read deadline is set when the request has a body and
// lifted once the body has been read to its end (a deadline left on the
// connection would cut net/http's background read and cancel the
// connection's later requests). Reads past the deadline fail, and past
// limit fail with *http.MaxBytesError; h answers those as it answers any
// body read error. Requests without a body (GET, watches) are untouched.
func Body(h http.Handler, d time.Duration, limit int64) http.Handler {
	return Drop(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(d))
		r.Body = &tracked{ReadCloser: http.MaxBytesReader(w, r.Body, limit), atEOF: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		h.ServeHTTP(w, r)
	}))
}

// tracked records whether its body was read to EOF.
type tracked struct {
	io.ReadCloser
	atEOF func() // optional, called once at EOF

	mu  sync.Mutex
	eof bool
}

func (t *tracked) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		t.mu.Lock()
		first := !t.eof
		t.eof = true
		t.mu.Unlock()
		if first && t.atEOF != nil {
			t.atEOF()
		}
	}
	return n, err
}

func (t *tracked) done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eof
}
