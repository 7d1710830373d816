package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
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
	reg  *registry.Registry
	opts Options
	log  *slog.Logger
	now  func() time.Time
}

// New returns a scheduler over st; reg gives it the revisions' prefix.
func New(st store.Store, reg *registry.Registry, opts Options, log *slog.Logger) *Scheduler {
	if opts.Policy == (Policy{}) {
		opts.Policy = DefaultPolicy
	}
	if opts.Debounce <= 0 {
		opts.Debounce = time.Millisecond
	}
	return &Scheduler{st: st, reg: reg, opts: opts, log: log.With("component", "scheduler"), now: time.Now}
}

// The sources the loop follows.
const (
	srcScale = iota
	srcNodes
	srcPlacements
	srcInstances
	srcRevisions
	numSources
)

// state is the leader's view of etcd. Only the Lead goroutine touches it.
type state struct {
	scale      map[string]cluster.Scale     // by store key
	nodes      map[string]cluster.Node      // by store key
	placements map[string]cluster.Placement // by store key
	instances  map[string]cluster.Instance  // by store key
	specs      map[string]*cluster.InstanceSpec
	synced     [numSources]bool
	rev        [numSources]int64
	failures   map[RevisionKey]Failures
}

// Lead runs the scheduler until ctx ends or leadership is lost (a fenced
// write answers errdefs.ErrNotLeader). Every write carries fence.
func (s *Scheduler) Lead(ctx context.Context, fence *store.Fence) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	feeds := make(chan store.Feed, 64)
	prefixes := [numSources]string{
		srcScale:      store.ScalePrefix,
		srcNodes:      store.NodesPrefix,
		srcPlacements: store.PlacementPrefix,
		srcInstances:  store.InstancePrefix,
		srcRevisions:  s.reg.Revisions().Prefix(""),
	}
	for src, prefix := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store.Follow(ctx, s.st, src, prefix, feeds, s.log)
		}()
	}

	st := &state{
		scale: map[string]cluster.Scale{}, nodes: map[string]cluster.Node{},
		placements: map[string]cluster.Placement{}, instances: map[string]cluster.Instance{},
		specs: map[string]*cluster.InstanceSpec{}, failures: map[RevisionKey]Failures{},
	}
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
		case f := <-feeds:
			s.apply(st, f)
			arm(s.now().Add(s.opts.Debounce))
		case <-timer.C:
			deadline = time.Time{}
			if !st.ready(lastPut) {
				continue // the feed that makes it ready arms the timer
			}
			dec := Plan(st.snapshot(s.opts.Policy), s.now())
			rev, retry, err := s.execute(ctx, st, fence, dec)
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
func (s *Scheduler) execute(ctx context.Context, st *state, fence *store.Fence, dec Decision) (int64, bool, error) {
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
			rev, err = s.st.Put(ctx, key, b, store.IfRevision(0), store.WithFence(fence))
			if err == nil {
				newest = max(newest, rev)
				st.placements[key] = p
				log.Info("placed instance")
			}
		case Remove:
			err = s.st.Delete(ctx, key, store.WithFence(fence))
			if err == nil || errdefs.IsNotFound(err) {
				err = nil
				delete(st.placements, key)
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
	for _, ok := range st.synced {
		if !ok {
			return false
		}
	}
	return st.rev[srcPlacements] >= lastPut
}

// apply folds one feed into the state.
func (s *Scheduler) apply(st *state, f store.Feed) {
	st.synced[f.Src] = true
	st.rev[f.Src] = max(st.rev[f.Src], f.Rev)
	if f.Reset {
		st.rev[f.Src] = f.Rev
		switch f.Src {
		case srcScale:
			clear(st.scale)
		case srcNodes:
			clear(st.nodes)
		case srcPlacements:
			clear(st.placements)
		case srcInstances:
			clear(st.instances)
		case srcRevisions:
			clear(st.specs)
		}
	}
	for _, key := range f.Dels {
		switch f.Src {
		case srcScale:
			delete(st.scale, key)
		case srcNodes:
			delete(st.nodes, key)
		case srcPlacements:
			delete(st.placements, key)
		case srcInstances:
			delete(st.instances, key)
		case srcRevisions:
			delete(st.specs, key)
		}
	}
	for _, kv := range f.Puts {
		var err error
		switch f.Src {
		case srcScale:
			var v cluster.Scale
			if err = json.Unmarshal(kv.Value, &v); err == nil {
				// The key, not the record, names the revision.
				v.Namespace, v.Revision = store.SplitLast(kv.Key)
				st.scale[kv.Key] = v
			}
		case srcNodes:
			var v cluster.Node
			if err = json.Unmarshal(kv.Value, &v); err == nil {
				_, v.Name = store.SplitLast(kv.Key)
				st.nodes[kv.Key] = v
			}
		case srcPlacements:
			var v cluster.Placement
			if err = json.Unmarshal(kv.Value, &v); err == nil {
				v.Node, v.Instance = store.SplitLast(kv.Key)
				st.placements[kv.Key] = v
			}
		case srcInstances:
			var v cluster.Instance
			if err = json.Unmarshal(kv.Value, &v); err == nil {
				v.Node, v.Instance = store.SplitLast(kv.Key)
				st.instances[kv.Key] = v
				if v.Ready {
					// A ready instance ends a run of failures.
					delete(st.failures, RevisionKey{v.Namespace, v.Revision})
				}
			}
		case srcRevisions:
			var rev v1.Revision
			if err = json.Unmarshal(kv.Value, &rev); err == nil {
				spec, serr := SpecFromRevision(&rev)
				if serr != nil {
					s.log.Warn("revision cannot be scheduled", "error", serr)
					st.specs[kv.Key] = nil
				} else {
					st.specs[kv.Key] = &spec
				}
			}
		}
		if err != nil {
			s.log.Warn("skipping undecodable record", "key", kv.Key, "error", err)
		}
	}
}

func (st *state) snapshot(p Policy) Snapshot {
	snap := Snapshot{
		Desired:  make(map[RevisionKey]int, len(st.scale)),
		Specs:    make(map[RevisionKey]cluster.InstanceSpec, len(st.specs)),
		Failures: st.failures,
		Policy:   p,
		Seed:     rand.Uint64(),
	}
	for _, sc := range st.scale {
		snap.Desired[RevisionKey{sc.Namespace, sc.Revision}] = sc.Desired
	}
	for _, sp := range st.specs {
		if sp != nil {
			snap.Specs[RevisionKey{sp.Namespace, sp.Revision}] = *sp
		}
	}
	for _, n := range st.nodes {
		snap.Nodes = append(snap.Nodes, n)
	}
	for _, p := range st.placements {
		snap.Placements = append(snap.Placements, p)
	}
	for _, in := range st.instances {
		snap.Instances = append(snap.Instances, in)
	}
	return snap
}
