package liveconfig

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

func TestWatcherAppliesChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := memstore.New()
	w := NewWatcher(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go w.Run(ctx)
	<-w.Synced()
	if w.Current().Autoscaler().StableWindow != 60*time.Second {
		t.Fatal("default not applied")
	}
	changed := w.Changed()
	b, _ := json.Marshal(config.Document{Data: map[string]string{"stable-window": "30s"}})
	st.Put(ctx, store.ConfigKey(config.NameAutoscaler), b)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no change notification")
	}
	if got := w.Current().Autoscaler().StableWindow; got != 30*time.Second {
		t.Fatalf("stable window = %v", got)
	}
}
