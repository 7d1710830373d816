package timeout

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// sleeper writes its status after first (0: at once, <0: never), flushes,
// then writes "a" every gap for n times.
func sleeper(first, gap time.Duration, n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first < 0 {
			<-r.Context().Done()
			return
		}
		select {
		case <-time.After(first):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for range n {
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
			if _, err := io.WriteString(w, "a"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
}

func TestServe(t *testing.T) {
	const u = 40 * time.Millisecond
	tests := []struct {
		name     string
		h        http.Handler
		l        Limits
		wantCode int
		wantBody string
	}{
		{name: "within the total", h: sleeper(u, u, 2), l: Limits{Total: 10 * u}, wantCode: 200, wantBody: "aa"},
		{name: "no limits", h: sleeper(u, 0, 1), wantCode: 200, wantBody: "a"},
		{name: "total passes before the first byte", h: sleeper(-1, 0, 0), l: Limits{Total: u}, wantCode: 504, wantBody: Message},
		// Knative's revision_timeout "writes first byte before timeout":
		// the status stays and the response ends where it stands.
		{name: "total passes after the response started", h: sleeper(0, 3*u, 5), l: Limits{Total: 5 * u},
			wantCode: 200, wantBody: "a" + Message},
		{name: "response start passes first", h: sleeper(5*u, 0, 1), l: Limits{Total: 20 * u, ResponseStart: u}, wantCode: 504, wantBody: Message},
		{name: "response started in time outlives its start limit", h: sleeper(0, 2*u, 2), l: Limits{ResponseStart: u},
			wantCode: 200, wantBody: "aa"},
		{name: "steady writes stay within idle", h: sleeper(0, u, 4), l: Limits{Idle: 3 * u}, wantCode: 200, wantBody: "aaaa"},
		{name: "idle passes between writes", h: sleeper(0, 6*u, 2), l: Limits{Idle: 2 * u}, wantCode: 200, wantBody: Message},
		{name: "idle passes before any write", h: sleeper(-1, 0, 0), l: Limits{Idle: u}, wantCode: 504, wantBody: Message},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(Handler(tc.h, func(*http.Request) Limits { return tc.l }))
			defer srv.Close()
			start := time.Now()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("body after %s: %v (a timed-out response must end cleanly)", time.Since(start), err)
			}
			if resp.StatusCode != tc.wantCode || string(b) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// A handler still writing after its request timed out gets
// http.ErrHandlerTimeout and never reaches the real writer.
func TestWritesAfterTimeoutFail(t *testing.T) {
	got := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		_, err := w.Write([]byte("late"))
		w.(http.Flusher).Flush()
		got <- err
	})
	rec := httptest.NewRecorder()
	Serve(rec, httptest.NewRequest(http.MethodGet, "/", nil), h, Limits{Total: 10 * time.Millisecond})
	if err := <-got; err != http.ErrHandlerTimeout {
		t.Errorf("late write: err = %v, want http.ErrHandlerTimeout", err)
	}
	if rec.Code != http.StatusGatewayTimeout || rec.Body.String() != Message {
		t.Errorf("recorded %d %q", rec.Code, rec.Body.String())
	}
}

func TestHandlerPanicPropagates(t *testing.T) {
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil),
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), Limits{Total: time.Second})
}
