package activator

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// register keeps this activator's record under activators/<identity> on a
// lease until ctx ends, re-registering when the lease is lost, and revokes
// the lease on the way out so the xds server stops routing here at once.
func (a *Activator) register(ctx context.Context) {
	rec, _ := json.Marshal(cluster.Activator{Identity: a.opts.Identity, Address: a.opts.Advertise, StartedAt: time.Now().UTC()})
	key := store.ActivatorKey(a.opts.Identity)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lctx, cancel := context.WithCancel(ctx)
		id, lost, err := a.st.GrantLease(lctx, a.opts.LeaseTTL)
		if err == nil {
			_, err = a.st.Put(ctx, key, rec, store.WithLease(id))
			if err != nil {
				a.revoke(id)
			}
		}
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("register activator; retrying", "key", key, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		a.log.Info("registered", "key", key, "advertise", a.opts.Advertise)
		select {
		case <-ctx.Done():
			a.revoke(id)
			cancel()
			return
		case <-lost:
			a.log.Warn("activator lease lost; registering again")
			cancel()
		}
	}
}

func (a *Activator) revoke(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.st.RevokeLease(ctx, id); err != nil {
		a.log.Warn("revoke activator lease", "error", err)
	}
}

// applyActivators follows activators/ and recomputes where this activator
// stands: N live activators in identity order, itself counted (last) while
// it is not registered. A change of N changes every instance's share, so
// every revision dispatches again.
func (a *Activator) applyActivators(f store.Feed, known map[string]cluster.Activator) {
	if f.Reset {
		clear(known)
	}
	for _, key := range f.Dels {
		delete(known, key)
	}
	for _, kv := range f.Puts {
		var rec cluster.Activator
		if err := json.Unmarshal(kv.Value, &rec); err != nil || rec.Identity == "" {
			a.log.Warn("skipping undecodable activator record", "key", kv.Key, "error", err)
			delete(known, kv.Key)
			continue
		}
		known[kv.Key] = rec
	}
	ids := make([]string, 0, len(known)+1)
	for _, rec := range known {
		ids = append(ids, rec.Identity)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	p := peers{n: len(ids) + 1, self: len(ids)}
	if i, ok := slices.BinarySearch(ids, a.opts.Identity); ok {
		p = peers{n: len(ids), self: i}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if *a.peers == p {
		return
	}
	*a.peers = p
	a.log.Info("activators changed", "live", p.n, "self", p.self)
	for _, r := range a.revs {
		r.dispatch()
	}
}
