package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return New() })
}

// A watcher that stops reading is cut off once its buffer is full, as etcd
// cuts off slow watchers: writers never block on it, and its channel closes
// after what it holds, which tells it to re-list.
func TestSlowWatcherIsCutOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := New()
	wc := st.Watch(ctx, "/k/", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			if _, err := st.Put(ctx, fmt.Sprintf("/k/%d", i), []byte("v")); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked on a watcher that does not read")
	}
	n := 0
	for range wc {
		n++
	}
	if n == 0 || n >= 2000 {
		t.Fatalf("the slow watcher got %d of 2000 events before its channel closed", n)
	}
}
