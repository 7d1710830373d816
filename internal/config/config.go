package config

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-serving/kiln/internal/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

// Document is the stored shape of one config: Knative ConfigMap data.
type Document struct {
	Data map[string]string `json:"data"`
}

// parser turns a config's data into its typed form, applying defaults and
// naming the key of the first invalid value.
type parser func(data map[string]string) (any, error)

var (
	mu      sync.RWMutex
	parsers = map[string]parser{}
)

// register adds a config kind; each kind's file registers itself in init.
func register(name string, p parser) {
	mu.Lock()
	defer mu.Unlock()
	parsers[name] = p
}

// Names returns the known config names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for n := range parsers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Parse validates data as config name. Errors wrap errdefs.ErrInvalidArgument
// and name the key, or errdefs.ErrNotFound for an unknown config name.
func Parse(name string, data map[string]string) (any, error) {
	mu.RLock()
	p, ok := parsers[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("config %q: %w (known: %s)", name, errdefs.ErrNotFound, strings.Join(Names(), ", "))
	}
	v, err := p(data)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", name, err)
	}
	return v, nil
}

// Snapshot is every config, parsed; a missing or invalid stored document
// yields that config's defaults.
type Snapshot struct {
	configs map[string]any
}

// Get returns config name from the snapshot (defaults when absent).
func (s *Snapshot) Get(name string) any {
	if v, ok := s.configs[name]; ok {
		return v
	}
	v, _ := Parse(name, nil)
	return v
}

// Autoscaler returns the autoscaler config.
func (s *Snapshot) Autoscaler() *Autoscaler { return s.Get(NameAutoscaler).(*Autoscaler) }

// DefaultSnapshot holds every config's defaults.
func DefaultSnapshot() *Snapshot { return &Snapshot{configs: map[string]any{}} }

// Watcher follows config/ and keeps a current Snapshot.
type Watcher struct {
	st      store.Store
	log     *slog.Logger
	cur     atomic.Pointer[Snapshot]
	mu      sync.Mutex
	waiters []chan struct{}
	synced  chan struct{}
	once    sync.Once
}

// NewWatcher returns a watcher whose Current is the defaults until Run has
// read the store.
func NewWatcher(st store.Store, log *slog.Logger) *Watcher {
	w := &Watcher{st: st, log: log.With("component", "config"), synced: make(chan struct{})}
	w.cur.Store(DefaultSnapshot())
	return w
}

// Current returns the latest snapshot. Never nil.
func (w *Watcher) Current() *Snapshot { return w.cur.Load() }

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
	feeds := make(chan store.Feed, 16)
	go store.Follow(ctx, w.st, 0, store.ConfigPrefix, feeds, w.log)
	docs := map[string]map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-feeds:
			if f.Reset {
				docs = map[string]map[string]string{}
			}
			for _, k := range f.Dels {
				delete(docs, strings.TrimPrefix(k, store.ConfigPrefix))
			}
			for _, kv := range f.Puts {
				var d Document
				name := strings.TrimPrefix(kv.Key, store.ConfigPrefix)
				if err := json.Unmarshal(kv.Value, &d); err != nil {
					w.log.Warn("ignoring undecodable config", "name", name, "error", err)
					continue
				}
				docs[name] = d.Data
			}
			snap := &Snapshot{configs: map[string]any{}}
			for name, data := range docs {
				v, err := Parse(name, data)
				if err != nil {
					w.log.Warn("invalid stored config; using defaults", "name", name, "error", err)
					continue
				}
				snap.configs[name] = v
			}
			w.cur.Store(snap)
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

// --- value parsers shared by the config kinds ---

func invalid(key, value, want string) error {
	return fmt.Errorf("%s: invalid value %q: %s: %w", key, value, want, errdefs.ErrInvalidArgument)
}

func parseFloat(data map[string]string, key string, def, min, max float64, dst *float64) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < min || f > max {
		return invalid(key, v, fmt.Sprintf("want a number in [%g, %g]", min, max))
	}
	*dst = f
	return nil
}

func parseInt(data map[string]string, key string, def, min, max int64, dst *int64) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || i < min || i > max {
		return invalid(key, v, fmt.Sprintf("want an integer in [%d, %d]", min, max))
	}
	*dst = i
	return nil
}

func parseBool(data map[string]string, key string, def bool, dst *bool) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return invalid(key, v, "want true or false")
	}
	*dst = b
	return nil
}

func parseDuration(data map[string]string, key string, def, min, max time.Duration, dst *time.Duration) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < min || (max > 0 && d > max) {
		return invalid(key, v, fmt.Sprintf("want a duration in [%s, %s]", min, max))
	}
	*dst = d
	return nil
}

func parseString(data map[string]string, key, def string, allowed []string, dst *string) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	v = strings.TrimSpace(v)
	if len(allowed) > 0 {
		for _, a := range allowed {
			if v == a {
				*dst = v
				return nil
			}
		}
		return invalid(key, v, "want one of "+strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

// checkKeys rejects keys the config does not know, so typos are caught.
func checkKeys(data map[string]string, known ...string) error {
	set := map[string]bool{}
	for _, k := range known {
		set[k] = true
	}
	var unknown []string
	for k := range data {
		if !set[k] && !strings.HasPrefix(k, "_") {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown key(s) %s: %w", strings.Join(unknown, ", "), errdefs.ErrInvalidArgument)
	}
	return nil
}
