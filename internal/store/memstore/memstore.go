package memstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

type watcher struct {
	prefix string
	ch     chan store.WatchResponse
	done   <-chan struct{} // the watch's ctx.Done()
}

// Store is an in-memory store.Store.
type Store struct {
	mu      sync.Mutex
	rev     int64
	kvs     map[string]store.KV
	history []store.Event // every event after compacted, for watches and lists from a past revision
	// compacted is the oldest revision still readable (Compact's).
	compacted int64
	watchers  map[*watcher]struct{}
	leases    map[int64]chan struct{}
	nextID    int64
}

var _ store.Store = (*Store)(nil)

// New returns an empty store at revision 1.
func New() *Store {
	return &Store{rev: 1, kvs: map[string]store.KV{}, watchers: map[*watcher]struct{}{}, leases: map[int64]chan struct{}{}}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.kvs[key]
	if !ok {
		return store.KV{}, fmt.Errorf("get %q: %w", key, errdefs.ErrNotFound)
	}
	return kv, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(prefix), s.rev, nil
}

func (s *Store) listLocked(prefix string) []store.KV {
	var out []store.KV
	for k, kv := range s.kvs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ListAt implements store.Store: it replays the history up to rev.
func (s *Store) ListAt(ctx context.Context, prefix string, rev int64) ([]store.KV, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= 0 || rev == s.rev {
		return s.listLocked(prefix), s.rev, nil
	}
	if rev > s.rev {
		return nil, 0, fmt.Errorf("list %q at revision %d: revision is in the future: %w", prefix, rev, errdefs.ErrInvalidArgument)
	}
	if rev < s.compacted {
		return nil, 0, fmt.Errorf("list %q at revision %d: compacted at %d: %w", prefix, rev, s.compacted, errdefs.ErrExpired)
	}
	at := map[string]store.KV{}
	for _, ev := range s.history {
		if ev.KV.ModRevision > rev {
			break
		}
		if !strings.HasPrefix(ev.KV.Key, prefix) {
			continue
		}
		if ev.Type == store.EventDelete {
			delete(at, ev.KV.Key)
		} else {
			at[ev.KV.Key] = ev.KV
		}
	}
	out := make([]store.KV, 0, len(at))
	for _, kv := range at {
		out = append(out, kv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, rev, nil
}

// Compact forgets the history before rev, as etcd's compaction does: lists
// and watches from before it fail with errdefs.ErrExpired. Keys live at rev
// keep their put in the history, so ListAt still sees them.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.compacted {
		return fmt.Errorf("compact at %d: already compacted at %d: %w", rev, s.compacted, errdefs.ErrExpired)
	}
	if rev > s.rev {
		return fmt.Errorf("compact at %d: revision is in the future: %w", rev, errdefs.ErrInvalidArgument)
	}
	// Keep the latest put of every key still live at rev, then every event after it.
	live := map[string]store.Event{}
	var rest []store.Event
	for _, ev := range s.history {
		switch {
		case ev.KV.ModRevision > rev:
			rest = append(rest, ev)
		case ev.Type == store.EventDelete:
			delete(live, ev.KV.Key)
		default:
			live[ev.KV.Key] = ev
		}
	}
	kept := make([]store.Event, 0, len(live)+len(rest))
	for _, ev := range live {
		kept = append(kept, ev)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].KV.ModRevision < kept[j].KV.ModRevision })
	s.history = append(kept, rest...)
	s.compacted = rev
	return nil
}

func (s *Store) check(op, key string, o store.WriteOptions) error {
	if o.Fence != nil {
		f, ok := s.kvs[o.Fence.Key]
		if !ok || f.CreateRevision != o.Fence.Rev {
			return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrNotLeader)
		}
	}
	cur, exists := s.kvs[key]
	switch {
	case o.ExpectRevision == 0 && exists:
		return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrAlreadyExists)
	case o.ExpectRevision > 0 && !exists:
		return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrNotFound)
	case o.ExpectRevision > 0 && cur.ModRevision != o.ExpectRevision:
		return fmt.Errorf("%s %q: stored at revision %d, caller expected %d: %w", op, key, cur.ModRevision, o.ExpectRevision, errdefs.ErrConflict)
	}
	if o.Lease != 0 {
		if _, ok := s.leases[o.Lease]; !ok {
			return fmt.Errorf("%s %q: lease %x: %w", op, key, o.Lease, errdefs.ErrNotFound)
		}
	}
	return nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts ...store.WriteOption) (int64, error) {
	o := store.ResolveWriteOptions(opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("put", key, o); err != nil {
		return 0, err
	}
	s.rev++
	kv := store.KV{Key: key, Value: append([]byte(nil), value...), ModRevision: s.rev, CreateRevision: s.rev, Lease: o.Lease}
	if cur, ok := s.kvs[key]; ok {
		kv.CreateRevision = cur.CreateRevision
	}
	s.kvs[key] = kv
	s.emit(store.Event{Type: store.EventPut, KV: kv})
	return s.rev, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string, opts ...store.WriteOption) error {
	o := store.ResolveWriteOptions(opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("delete", key, o); err != nil {
		return err
	}
	if _, ok := s.kvs[key]; !ok {
		return fmt.Errorf("delete %q: %w", key, errdefs.ErrNotFound)
	}
	s.deleteLocked(key)
	return nil
}

func (s *Store) deleteLocked(key string) {
	cur := s.kvs[key]
	delete(s.kvs, key)
	s.rev++
	cur.ModRevision = s.rev
	s.emit(store.Event{Type: store.EventDelete, KV: cur})
}

// emit records an event and fans it out; callers hold s.mu.
func (s *Store) emit(ev store.Event) {
	s.history = append(s.history, ev)
	for w := range s.watchers {
		if !strings.HasPrefix(ev.KV.Key, w.prefix) {
			continue
		}
		select {
		case w.ch <- store.WatchResponse{Events: []store.Event{ev}, Revision: s.rev}:
		case <-w.done:
		default:
			// A watcher that does not keep up is cut off, as etcd does
			// with slow watchers: its channel closes after what it holds
			// and it must re-list. (Its buffer is full, so there is no
			// room for an error response; a closed channel says the same.)
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan store.WatchResponse {
	w := &watcher{prefix: prefix, ch: make(chan store.WatchResponse, 1024), done: ctx.Done()}
	s.mu.Lock()
	if fromRev > 0 && fromRev < s.compacted {
		w.ch <- store.WatchResponse{Err: fmt.Errorf("watch %q from revision %d: compacted at %d: %w", prefix, fromRev, s.compacted, errdefs.ErrExpired)}
		close(w.ch)
		s.mu.Unlock()
		return w.ch
	}
	if fromRev > 0 {
		for _, ev := range s.history {
			if ev.KV.ModRevision >= fromRev && strings.HasPrefix(ev.KV.Key, prefix) {
				w.ch <- store.WatchResponse{Events: []store.Event{ev}, Revision: ev.KV.ModRevision}
			}
		}
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watchers[w]; ok {
			delete(s.watchers, w)
			close(w.ch)
		}
	}()
	return w.ch
}

// GrantLease implements store.Store. Leases never expire on their own; use
// ExpireLease to simulate a dead holder.
func (s *Store) GrantLease(ctx context.Context, ttl time.Duration) (int64, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	lost := make(chan struct{})
	s.leases[s.nextID] = lost
	return s.nextID, lost, nil
}

// RevokeLease implements store.Store.
func (s *Store) RevokeLease(ctx context.Context, id int64) error {
	return s.ExpireLease(id)
}

// ExpireLease deletes a lease and its keys, as if its holder died.
func (s *Store) ExpireLease(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lost, ok := s.leases[id]
	if !ok {
		return fmt.Errorf("revoke lease %x: %w", id, errdefs.ErrNotFound)
	}
	delete(s.leases, id)
	close(lost)
	var keys []string
	for k, kv := range s.kvs {
		if kv.Lease == id {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.deleteLocked(k)
	}
	return nil
}
