package store

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
)

// Decoder turns one stored value into T. An error drops the key from the
// cache (logged), as if it had been deleted.
type Decoder[T any] func(kv KV) (T, error)

// JSON is the Decoder of values stored as JSON documents.
func JSON[T any](kv KV) (T, error) {
	var v T
	err := json.Unmarshal(kv.Value, &v)
	return v, err
}

// Change is one key's change as a Cache applied it.
type Change[T any] struct {
	Key string
	// Old is the value before the change; valid when HadOld. For a delete
	// it is the last value the key had.
	Old    T
	HadOld bool
	// New is the value after the change; valid unless Deleted.
	New     T
	Deleted bool
}

type entry[T any] struct {
	v   T
	rev int64 // ModRevision of the value
}

// Cache mirrors one prefix of the store as typed values, fed by Apply with
// the batches store.Follow sends (usually through a Mirror). It is not safe
// for concurrent use: one goroutine owns it, applies feeds and reads it,
// or the owner guards it with its own lock.
type Cache[T any] struct {
	prefix   string
	decode   Decoder[T]
	log      *slog.Logger
	items    map[string]entry[T]
	handlers []func(Change[T])
	synced   bool
	rev      int64
}

// NewCache returns an empty, unsynced cache of prefix. log may be nil.
func NewCache[T any](prefix string, decode Decoder[T], log *slog.Logger) *Cache[T] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache[T]{prefix: prefix, decode: decode, log: log, items: map[string]entry[T]{}}
}

// OnChange registers f, called by Apply once per changed key, after the
// cache holds the new state. Register before the first Apply.
func (c *Cache[T]) OnChange(f func(Change[T])) *Cache[T] {
	c.handlers = append(c.handlers, f)
	return c
}

// Prefix is the store prefix the cache mirrors.
func (c *Cache[T]) Prefix() string { return c.prefix }

// Synced reports whether the prefix has been listed at least once.
func (c *Cache[T]) Synced() bool { return c.synced }

// Rev is the store revision the cache is known to be current at.
func (c *Cache[T]) Rev() int64 { return c.rev }

// Len is the number of keys held.
func (c *Cache[T]) Len() int { return len(c.items) }

// Get returns the value of key.
func (c *Cache[T]) Get(key string) (T, bool) {
	e, ok := c.items[key]
	return e.v, ok
}

// Range calls f for every key in no particular order until f returns false.
func (c *Cache[T]) Range(f func(key string, v T) bool) {
	for k, e := range c.items {
		if !f(k, e.v) {
			return
		}
	}
}

// Keys returns every key, sorted.
func (c *Cache[T]) Keys() []string {
	keys := make([]string, 0, len(c.items))
	for k := range c.items {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Values returns every value, in key order.
func (c *Cache[T]) Values() []T {
	out := make([]T, 0, len(c.items))
	for _, k := range c.Keys() {
		out = append(out, c.items[k].v)
	}
	return out
}

// Observe records the caller's own successful write of key at modRev before
// the watch brings it back, so the owner does not act on a view older than
// its own writes. A later event for key older than modRev is ignored.
func (c *Cache[T]) Observe(key string, v T, modRev int64) {
	old, had := c.items[key]
	if had && old.rev > modRev {
		return
	}
	c.items[key] = entry[T]{v: v, rev: modRev}
	c.notify(Change[T]{Key: key, Old: old.v, HadOld: had, New: v})
}

// Forget records the caller's own successful delete of key.
func (c *Cache[T]) Forget(key string) {
	if old, had := c.items[key]; had {
		delete(c.items, key)
		c.notify(Change[T]{Key: key, Old: old.v, HadOld: true, Deleted: true})
	}
}

// Apply folds one feed into the cache and calls the change handlers. It
// returns how many keys changed. A Reset feed (a fresh list) is diffed
// against what the cache held, so consumers see only real changes, with the
// last value of every key the list no longer holds.
func (c *Cache[T]) Apply(f Feed) int {
	n := 0
	if f.Reset {
		listed := make(map[string]bool, len(f.Puts))
		for _, kv := range f.Puts {
			listed[kv.Key] = true
		}
		for _, k := range c.Keys() {
			// A key the owner wrote itself (Observe) after the list was
			// read is newer than the list: the watch from the list's
			// revision brings it, so keep it meanwhile.
			if !listed[k] && c.items[k].rev <= f.Rev {
				n += c.del(k)
			}
		}
		for _, kv := range f.Puts {
			n += c.put(kv)
		}
		c.rev = f.Rev
		c.synced = true
		return n
	}
	for _, k := range f.Dels {
		if e, ok := c.items[k]; ok && e.rev > f.Rev {
			continue // our own newer write (Observe) is already here
		}
		n += c.del(k)
	}
	for _, kv := range f.Puts {
		n += c.put(kv)
	}
	c.rev = max(c.rev, f.Rev)
	return n
}

func (c *Cache[T]) put(kv KV) int {
	old, had := c.items[kv.Key]
	if had && old.rev >= kv.ModRevision {
		return 0 // unchanged, or older than what we hold
	}
	v, err := c.decode(kv)
	if err != nil {
		c.log.Warn("dropping undecodable value", "key", kv.Key, "error", err)
		return c.del(kv.Key)
	}
	c.items[kv.Key] = entry[T]{v: v, rev: kv.ModRevision}
	c.notify(Change[T]{Key: kv.Key, Old: old.v, HadOld: had, New: v})
	return 1
}

func (c *Cache[T]) del(key string) int {
	old, had := c.items[key]
	if !had {
		return 0
	}
	delete(c.items, key)
	c.notify(Change[T]{Key: key, Old: old.v, HadOld: true, Deleted: true})
	return 1
}

func (c *Cache[T]) notify(ch Change[T]) {
	for _, h := range c.handlers {
		h(ch)
	}
}

// Source is a cache of any value type, as a Mirror drives it.
type Source interface {
	Prefix() string
	Apply(Feed) int
	Synced() bool
}

var _ Source = (*Cache[int])(nil)

// Mirror follows the prefix of each of its sources (store.Follow: list,
// then watch, re-listing after a failed watch) into one channel, so the
// single goroutine that owns the sources applies every batch in order:
//
//	m := store.NewMirror(nodes, instances)
//	go m.Run(ctx, st, log)
//	for { select { case f := <-m.Feeds(): m.Apply(f); ... } }
type Mirror struct {
	srcs  []Source
	feeds chan Feed
}

// NewMirror returns a mirror of srcs; a Feed's Src is the source's index.
func NewMirror(srcs ...Source) *Mirror {
	return &Mirror{srcs: srcs, feeds: make(chan Feed, 64)}
}

// Feeds carries every batch, for the owner to Apply.
func (m *Mirror) Feeds() <-chan Feed { return m.feeds }

// Apply folds f into its source and returns that source and how many keys
// changed.
func (m *Mirror) Apply(f Feed) (Source, int) {
	s := m.srcs[f.Src]
	return s, s.Apply(f)
}

// Synced reports whether every source has been listed once.
func (m *Mirror) Synced() bool {
	for _, s := range m.srcs {
		if !s.Synced() {
			return false
		}
	}
	return true
}

// Run follows every source until ctx ends and returns once all followers
// have stopped.
func (m *Mirror) Run(ctx context.Context, st Store, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for i, s := range m.srcs {
		wg.Go(func() { Follow(ctx, st, i, s.Prefix(), m.feeds, log) })
	}
	wg.Wait()
}

// Fenced returns a Store whose every Put and Delete carries fence, so a
// leader loop handed it cannot make an unfenced write: once another
// process leads, each write fails with errdefs.ErrNotLeader.
func Fenced(st Store, fence *Fence) Store {
	return fenced{Store: st, fence: fence}
}

type fenced struct {
	Store
	fence *Fence
}

func (f fenced) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (int64, error) {
	return f.Store.Put(ctx, key, value, append(opts, WithFence(f.fence))...)
}

func (f fenced) Delete(ctx context.Context, key string, opts ...WriteOption) error {
	return f.Store.Delete(ctx, key, append(opts, WithFence(f.fence))...)
}
