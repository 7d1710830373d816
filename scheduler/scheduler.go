package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// Options tune the leader loop. The zero value is usable.
type Options struct {
	// Policy bounds the replacement of failed instances. Optional;
	// DefaultPolicy when zero.
	Policy Policy
	// Debounce coalesces a burst of changes into one plan. Optional,
	// default 1ms: scheduling is on the cold-start path.
	Debounce time.Duration
}

// Scheduler places revisions' instances on nodes while it leads.
type Scheduler struct {
	st   store.Store
	opts Options
	log  *slog.Logger
	now  func() time.Time
}

// New returns a scheduler over st.
func New(st store.Store, opts Options, log *slog.Logger) *Scheduler {
	if opts.Policy == (Policy{}) {
		opts.Policy = DefaultPolicy
	}
	if opts.Debounce <= 0 {
		opts.Debounce = time.Millisecond
	}
	return &Scheduler{st: st, opts: opts, log: log.With("component", "scheduler"), now: time.Now}
}

// state is the leader's view of etcd. Only the goroutine running loop
// touches it.
type state struct {
	// w is the store fenced with this term: the only way the loop writes.
	w          store.Store
	scale      *store.Cache[cluster.Scale]
	nodes      *store.Cache[cluster.Node]
	placements *store.Cache[cluster.Placement]
	instances  *store.Cache[cluster.Instance]
	// specs holds nil for a revision that cannot be scheduled.
	specs    *store.Cache[*cluster.InstanceSpec]
	mirror   *store.Mirror
	failures map[RevisionKey]Failures
}

func (s *Scheduler) newState(w store.Store) *state {
	st := &state{
		w:          w,
		scale:      store.NewCache(store.ScalePrefix, decodeScale, s.log),
		nodes:      store.NewCache(store.NodesPrefix, decodeNode, s.log),
		placements: store.NewCache(store.PlacementPrefix, decodePlacement, s.log),
		instances:  store.NewCache(store.InstancePrefix, decodeInstance, s.log),
		specs:      store.NewCache(store.RevisionsPrefix, s.decodeSpec, s.log),
		failures:   map[RevisionKey]Failures{},
	}
	st.instances.OnChange(func(c store.Change[cluster.Instance]) {
		if !c.Deleted && c.New.Ready {
			// A ready instance ends a run of failures.
			delete(st.failures, RevisionKey{c.New.Namespace, c.New.Revision})
		}
	})
	st.mirror = store.NewMirror(st.scale, st.nodes, st.placements, st.instances, st.specs)
	return st
}

// Lead runs the scheduler until ctx ends or leadership is lost (a fenced
// write answers errdefs.ErrNotLeader). Every write goes through a store
// fenced with fence, so none can be made without it.
func (s *Scheduler) Lead(ctx context.Context, fence *store.Fence) error {
	st := s.newState(store.Fenced(s.st, fence))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { st.mirror.Run(ctx, st.w, s.log); return nil })
	g.Go(func() error { return s.loop(ctx, st) })
	return g.Wait()
}

// loop owns st: it applies every feed and plans after a debounce. It
// returns nil when ctx ends and an error when this process no longer leads.
func (s *Scheduler) loop(ctx context.Context, st *state) error {
	// lastPut is the revision of our newest placement write: we never plan
	// on a view of placements/ older than our own writes, or we would
	// place the same instance twice.
	var lastPut int64
	var unplaced map[RevisionKey]int
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline time.Time // zero: timer not armed
	arm := func(at time.Time) {
		if deadline.IsZero() || at.Before(deadline) {
			deadline = at
			timer.Reset(time.Until(at))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-st.mirror.Feeds():
			st.mirror.Apply(f)
			arm(s.now().Add(s.opts.Debounce))
		case <-timer.C:
			deadline = time.Time{}
			if !st.ready(lastPut) {
				continue // the feed that makes it ready arms the timer
			}
			dec := Plan(st.snapshot(s.opts.Policy), s.now())
			rev, retry, err := s.execute(ctx, st, dec)
			if err != nil {
				return err
			}
			lastPut = max(lastPut, rev)
			if retry {
				arm(s.now().Add(time.Second))
			}
			if !dec.RetryAt.IsZero() {
				arm(dec.RetryAt)
			}
			for k, n := range dec.Unplaced {
				if unplaced[k] != n { // say it once per change, not on every plan
					s.log.Warn("no node has room", "revision", k.String(), "instances", n)
				}
			}
			unplaced = dec.Unplaced
		}
	}
}

// execute makes the decision's writes. It returns the newest revision it
// wrote, whether a write failed in a way worth retrying, and an error when
// this process no longer leads.
func (s *Scheduler) execute(ctx context.Context, st *state, dec Decision) (int64, bool, error) {
	var newest int64
	retry := false
	for _, a := range dec.Actions {
		p := a.Placement
		key := store.PlacementKey(p.Node, p.Instance)
		rk := RevisionKey{p.Spec.Namespace, p.Spec.Revision}
		log := s.log.With("instance", p.Instance, "node", p.Node, "revision", rk.String(), "reason", a.Reason)
		var err error
		switch a.Kind {
		case Place:
			var b []byte
			if b, err = json.Marshal(p); err != nil {
				return newest, retry, fmt.Errorf("encode placement %s: %w", key, err)
			}
			var rev int64
			rev, err = st.w.Put(ctx, key, b, store.IfRevision(0))
			if err == nil {
				newest = max(newest, rev)
				st.placements.Observe(key, p, rev)
				log.Info("placed instance")
			}
		case Remove:
			err = st.w.Delete(ctx, key)
			if err == nil || errdefs.IsNotFound(err) {
				err = nil
				st.placements.Forget(key)
				if a.Reason == ReasonFailed {
					f := st.failures[rk]
					st.failures[rk] = Failures{Count: f.Count + 1, Last: s.now()}
				}
				log.Info("removed placement")
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, errdefs.ErrNotLeader):
			return newest, retry, fmt.Errorf("%s placement %s: %w", a.Kind, key, err)
		case ctx.Err() != nil:
			return newest, retry, nil
		case errdefs.IsAlreadyExists(err):
			// Only a name collision with a placement we have not seen
			// yet; the watch brings it and the next plan accounts for it.
			log.Warn("placement already exists", "error", err)
		default:
			log.Warn("placement write failed; will retry", "action", a.Kind.String(), "error", err)
			retry = true
		}
	}
	return newest, retry, nil
}

func (st *state) ready(lastPut int64) bool {
	return st.mirror.Synced() && st.placements.Rev() >= lastPut
}

// The key, not the record, names what a record is about.

func decodeScale(kv store.KV) (cluster.Scale, error) {
	v, err := store.JSON[cluster.Scale](kv)
	v.Namespace, v.Revision = store.SplitLast(kv.Key)
	return v, err
}

func decodeNode(kv store.KV) (cluster.Node, error) {
	v, err := store.JSON[cluster.Node](kv)
	_, v.Name = store.SplitLast(kv.Key)
	return v, err
}

func decodePlacement(kv store.KV) (cluster.Placement, error) {
	v, err := store.JSON[cluster.Placement](kv)
	v.Node, v.Instance = store.SplitLast(kv.Key)
	return v, err
}

func decodeInstance(kv store.KV) (cluster.Instance, error) {
	v, err := store.JSON[cluster.Instance](kv)
	v.Node, v.Instance = store.SplitLast(kv.Key)
	return v, err
}

// decodeSpec keeps a revision that cannot be scheduled as nil rather than
// dropping it: it exists, it just has no spec.
func (s *Scheduler) decodeSpec(kv store.KV) (*cluster.InstanceSpec, error) {
	rev, err := store.JSON[v1.Revision](kv)
	if err != nil {
		return nil, err
	}
	spec, err := SpecFromRevision(&rev)
	if err != nil {
		s.log.Warn("revision cannot be scheduled", "error", err)
		return nil, nil
	}
	return &spec, nil
}

func (st *state) snapshot(p Policy) Snapshot {
	snap := Snapshot{
		Desired:  make(map[RevisionKey]int, st.scale.Len()),
		Specs:    make(map[RevisionKey]cluster.InstanceSpec, st.specs.Len()),
		Failures: st.failures,
		Policy:   p,
		Seed:     rand.Uint64(),
	}
	for _, sc := range st.scale.Values() {
		snap.Desired[RevisionKey{sc.Namespace, sc.Revision}] = sc.Desired
	}
	for _, sp := range st.specs.Values() {
		if sp != nil {
			snap.Specs[RevisionKey{sp.Namespace, sp.Revision}] = *sp
		}
	}
	snap.Nodes = st.nodes.Values()
	snap.Placements = st.placements.Values()
	snap.Instances = st.instances.Values()
	return snap
}
