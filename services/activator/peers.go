package activator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// Deregister removes this activator from activators/ (its lease is
// revoked, so the xds server drops it from every revision's endpoints at
// once) while it goes on serving and following the cluster: a graceful
// stop hands off first, then stops accepting. It returns once the record
// is gone, or with ctx's error; without Advertise it returns at once.
// Run must be running (or have run) for it to return before ctx ends.
func (a *Activator) Deregister(ctx context.Context) error {
	a.deregisterOnce.Do(func() { close(a.deregister) })
	select {
	case <-a.unregistered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deregister activator %s: %w", a.opts.Identity, ctx.Err())
	}
}

// register keeps this activator's record under activators/<identity> on a
// lease until ctx ends or Deregister is called, re-registering when the
// lease is lost, and revokes the lease on the way out so the xds server
// stops routing here at once.
func (a *Activator) register(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-a.deregister:
			stop()
		case <-ctx.Done():
		}
	}()
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

func decodeActivator(kv store.KV) (cluster.Activator, error) {
	rec, err := store.JSON[cluster.Activator](kv)
	if err == nil && rec.Identity == "" {
		err = errors.New("activator record without identity")
	}
	return rec, err
}

// peersOf says where this activator stands among the live ones: N live
// activators in identity order, itself counted (last) while it is not
// registered. A change of N changes every instance's share, so every
// revision dispatches again (publish).
func (a *Activator) peersOf(live *store.Cache[cluster.Activator]) *peers {
	ids := make([]string, 0, live.Len()+1)
	live.Range(func(_ string, rec cluster.Activator) bool {
		ids = append(ids, rec.Identity)
		return true
	})
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if i, ok := slices.BinarySearch(ids, a.opts.Identity); ok {
		return &peers{n: len(ids), self: i}
	}
	return &peers{n: len(ids) + 1, self: len(ids)}
}
