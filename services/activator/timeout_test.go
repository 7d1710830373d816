package activator_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/timeout"
	"github.com/kiln-serving/kiln/services/activator"
)

// A response that started before the revision's timeoutSeconds keeps its
// status when the timeout passes and ends cleanly (Knative's timeout
// handler); one that did not start gets 504.
func TestTimeoutAfterResponseStarted(t *testing.T) {
	st := memstore.New()
	putRevision(t, st, "stream-00001", 0, 1)
	srv := start(t, st, activator.Options{Timeout: time.Hour})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if r.URL.Path == "/stream" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(b.Close)
	putInstance(t, st, "stream-00001-a", "stream-00001", strings.TrimPrefix(b.URL, "http://"), true)
	waitForwarding(t, srv.URL, "stream-00001")

	for _, tc := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/stream", http.StatusOK, timeout.Message},
		{"/silent", http.StatusGatewayTimeout, timeout.Message},
	} {
		begin := time.Now()
		code, body := get(t, srv.URL+tc.path, "default", "stream-00001")
		if code != tc.wantCode || body != tc.wantBody {
			t.Errorf("%s: got %d %q, want %d %q", tc.path, code, body, tc.wantCode, tc.wantBody)
		}
		if d := time.Since(begin); d > 4*time.Second {
			t.Errorf("%s: answered after %v, want the revision's 1s", tc.path, d)
		}
	}
}
