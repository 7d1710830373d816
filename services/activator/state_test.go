package activator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// Requests naming revisions the registry lacks leave no entry behind,
// neither a revision nor a served counter.
func TestUnknownRevisionKeepsNoState(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := New(memstore.New(), Options{}, testenv.Quiet())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := a.Handler()
	for i := range 1000 {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(v1.NamespaceHeaderName, "default")
		req.Header.Set(v1.RevisionHeaderName, "ghost-"+strconv.Itoa(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("request %d: %d %q", i, rec.Code, rec.Body.String())
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.revs) != 0 || len(a.served) != 0 {
		t.Fatalf("kept state for unknown revisions: %d entries, %d counters", len(a.revs), len(a.served))
	}
}
