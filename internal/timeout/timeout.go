package timeout

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Message is the body of a timed-out response (Knative's).
const Message = "request timeout"

// Limits are one request's bounds; 0 means none.
type Limits struct {
	// Total bounds the request from start to end.
	Total time.Duration
	// ResponseStart bounds the time to the response's first write.
	ResponseStart time.Duration
	// Idle bounds the time between the response's writes (and from the
	// start to the first one).
	Idle time.Duration
}

// Serve runs h for r within l. The first limit to pass ends the request:
// h's context is cancelled, its later writes fail with
// http.ErrHandlerTimeout, and w gets 504 with Message when nothing was
// written yet, or Message appended to the started response when a Total or
// Idle limit passes after it started (Knative's behaviour; the status
// stays). ResponseStart does not end a response that started in time.
// Serve returns once the request ended or h returned, whichever is first;
// h may still be unwinding (its writes are refused).
func Serve(w http.ResponseWriter, r *http.Request, h http.Handler, l Limits) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	tw := &writer{w: w}
	done := make(chan any, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- p
			}
			close(done)
		}()
		h.ServeHTTP(tw, r.WithContext(ctx))
	}()

	total := timer(l.Total)
	defer stop(total)
	start := timer(l.ResponseStart)
	defer stop(start)
	idle := timer(l.Idle)
	defer stop(idle)
	for {
		select {
		case p, ok := <-done:
			if ok {
				panic(p)
			}
			return
		case <-chanOf(total):
			tw.expire()
			return
		case <-chanOf(start):
			if tw.expireUnstarted() {
				return
			}
			start = nil
		case now := <-chanOf(idle):
			left := tw.expireIdle(now, l.Idle)
			if left <= 0 {
				return
			}
			idle.Reset(left)
		}
	}
}

// Handler wraps h so that each request is bounded by limits(r).
func Handler(h http.Handler, limits func(*http.Request) Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Serve(w, r, h, limits(r))
	})
}

func timer(d time.Duration) *time.Timer {
	if d <= 0 {
		return nil
	}
	return time.NewTimer(d)
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// chanOf is t's channel; nil (never ready) without a timer.
func chanOf(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// writer passes writes through until the request times out, and remembers
// when the last one happened.
type writer struct {
	w         http.ResponseWriter
	mu        sync.Mutex
	timedOut  bool
	started   bool
	hijacked  bool
	lastWrite time.Time
}

var (
	_ http.Flusher  = (*writer)(nil)
	_ http.Hijacker = (*writer)(nil)
)

func (tw *writer) Header() http.Header { return tw.w.Header() }

func (tw *writer) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	tw.started, tw.lastWrite = true, time.Now()
	return tw.w.Write(p)
}

func (tw *writer) WriteHeader(code int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return
	}
	// 1xx informational headers do not start the response.
	if code >= 200 {
		tw.started = true
	}
	tw.lastWrite = time.Now()
	tw.w.WriteHeader(code)
}

// Flush forwards unless the request timed out: the handler may flush after
// Serve returned, when the real writer is no longer its to touch.
func (tw *writer) Flush() {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return
	}
	if f, ok := tw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets upgraded connections (websockets) through. The connection is
// the handler's from then on: a limit that passes only cancels the
// handler's context (which ends a proxied upgrade), as in Knative.
func (tw *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return nil, nil, http.ErrHandlerTimeout
	}
	h, ok := tw.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("timeout: response writer cannot hijack")
	}
	c, rw, err := h.Hijack()
	if err == nil {
		tw.started, tw.hijacked = true, true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the real writer.
func (tw *writer) Unwrap() http.ResponseWriter { return tw.w }

// expire ends the request; callers hold no lock.
func (tw *writer) expire() {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.expireLocked()
}

func (tw *writer) expireLocked() {
	if tw.timedOut {
		return
	}
	tw.timedOut = true
	if tw.hijacked {
		return
	}
	if !tw.started {
		tw.w.WriteHeader(http.StatusGatewayTimeout)
	}
	_, _ = io.WriteString(tw.w, Message)
}

// expireUnstarted ends the request if its response has not started.
func (tw *writer) expireUnstarted() bool {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.started {
		return false
	}
	tw.expireLocked()
	return true
}

// expireIdle ends the request if nothing was written for idle before now
// (counting from the first check when nothing was ever written) and
// returns 0; otherwise it returns the time left until the next check.
func (tw *writer) expireIdle(now time.Time, idle time.Duration) time.Duration {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if !tw.lastWrite.IsZero() {
		if left := idle - now.Sub(tw.lastWrite); left > 0 {
			return left
		}
	}
	tw.expireLocked()
	return 0
}
