package liveconfig

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/internal/store"
)

// Watcher follows config/ and keeps a current Snapshot.
type Watcher struct {
	st      store.Store
	log     *slog.Logger
	cur     atomic.Pointer[config.Snapshot]
	mu      sync.Mutex
	waiters []chan struct{}
	synced  chan struct{}
	once    sync.Once
}

// NewWatcher returns a watcher whose Current is the defaults until Run has
// read the store.
func NewWatcher(st store.Store, log *slog.Logger) *Watcher {
	w := &Watcher{st: st, log: log.With("component", "config"), synced: make(chan struct{})}
	w.cur.Store(config.DefaultSnapshot())
	return w
}

// Current returns the latest snapshot. Never nil.
func (w *Watcher) Current() *config.Snapshot { return w.cur.Load() }

// Synced is closed once the store has been read once.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// Changed returns a channel closed at the next change.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	w.waiters = append(w.waiters, ch)
	return ch
}

// Run follows the store until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	docs := store.NewCache(store.ConfigPrefix, store.JSON[config.Document], w.log)
	m := store.NewMirror(docs)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, w.st, w.log) }()
	defer func() { cancel(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.Feeds():
			m.Apply(f)
			data := map[string]map[string]string{}
			docs.Range(func(key string, d config.Document) bool {
				data[strings.TrimPrefix(key, store.ConfigPrefix)] = d.Data
				return true
			})
			w.cur.Store(config.SnapshotOf(data, func(name string, err error) {
				w.log.Warn("invalid stored config; using defaults", "name", name, "error", err)
			}))
			w.once.Do(func() { close(w.synced) })
			w.mu.Lock()
			for _, ch := range w.waiters {
				close(ch)
			}
			w.waiters = nil
			w.mu.Unlock()
		}
	}
}
