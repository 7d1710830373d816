package autoscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
)

// Options tune the leader loop. The zero value is usable.
type Options struct {
	// Debounce coalesces a burst of registry and instance changes into one
	// decision. Optional, default 1ms: the initial scale is on the create path.
	Debounce time.Duration
	// Tick is how often every revision is decided. Optional, default 2s
	// (Knative's tick interval).
	Tick time.Duration
	// Config is the live cluster config. Optional: Lead follows config/
	// itself when nil.
	Config ConfigSource
}

// ConfigSource gives the current cluster configs (liveconfig.Watcher).
type ConfigSource interface {
	Current() *config.Snapshot
	Changed() <-chan struct{}
}

// Autoscaler writes scale/ while it leads and serves the Autoscaler gRPC
// service (see Server) on every replica.
type Autoscaler struct {
	st   store.Store
	reg  *registry.Registry
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// term is set while this replica leads and its loop is ready: the
	// gRPC handlers record into its collector and send it pokes.
	term atomic.Pointer[term]
}

type term struct {
	coll  *collector
	pokes chan pokeReq
	// done is closed when the term ends, releasing pokes still waiting.
	done chan struct{}
}

type pokeReq struct {
	key    RevisionKey
	queued int32
	reply  chan pokeReply
}

type pokeReply struct {
	desired int
	err     error
}

// New returns an autoscaler over st; reg gives it the registry's prefixes.
func New(st store.Store, reg *registry.Registry, opts Options, log *slog.Logger) *Autoscaler {
	if opts.Debounce <= 0 {
		opts.Debounce = time.Millisecond
	}
	if opts.Tick <= 0 {
		opts.Tick = 2 * time.Second
	}
	return &Autoscaler{st: st, reg: reg, opts: opts, log: log.With("component", "autoscaler"), now: time.Now}
}

const (
	srcRevisions = iota
	srcRoutes
	srcConfigurations
	srcScale
	srcInstances
	numSources
)

// state is the leader's view. Only the Lead goroutine touches it.
type state struct {
	revisions map[string]*v1.Revision
	routes    map[string]*v1.Route
	cfgs      map[string]*v1.Configuration
	scale     map[RevisionKey]scaleKV
	instances map[string]cluster.Instance
	synced    [numSources]bool
	// per revision: decision state and when this leader first saw it.
	decisions map[RevisionKey]*revState
}

type revState struct {
	st      State
	tracked time.Time
}

type scaleKV struct {
	rec    cluster.Scale
	modRev int64
}

// Lead keeps scale/ in line with Decide until ctx ends or leadership is
// lost (a fenced write answers errdefs.ErrNotLeader, returned).
func (a *Autoscaler) Lead(ctx context.Context, fence *store.Fence) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { a.term.Store(nil); cancel(); wg.Wait() }()

	cfgs := a.opts.Config
	if cfgs == nil {
		w := liveconfig.NewWatcher(a.st, a.log)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
		select {
		case <-w.Synced():
		case <-ctx.Done():
			return nil
		}
		cfgs = w
	}
	feeds := make(chan store.Feed, 64)
	prefixes := [numSources]string{
		srcRevisions:      a.reg.Revisions().Prefix(""),
		srcRoutes:         a.reg.Routes().Prefix(""),
		srcConfigurations: a.reg.Configurations().Prefix(""),
		srcScale:          store.ScalePrefix,
		srcInstances:      store.InstancePrefix,
	}
	for src, prefix := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store.Follow(ctx, a.st, src, prefix, feeds, a.log)
		}()
	}
	st := &state{revisions: map[string]*v1.Revision{}, routes: map[string]*v1.Route{},
		cfgs: map[string]*v1.Configuration{}, scale: map[RevisionKey]scaleKV{},
		instances: map[string]cluster.Instance{}, decisions: map[RevisionKey]*revState{}}
	t := &term{coll: newCollector(), pokes: make(chan pokeReq, 64), done: make(chan struct{})}
	defer close(t.done)
	// Stats count from now on; pokes wait in the channel until the first
	// full view.
	a.term.Store(t)

	tick := time.NewTicker(a.opts.Tick)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func() {
		if !armed {
			armed = true
			timer.Reset(a.opts.Debounce)
		}
	}
	cfgChanged := cfgs.Changed()
	for {
		// Pokes only once the view is whole; until then they queue.
		var pokes chan pokeReq
		if st.ready() {
			pokes = t.pokes
		}
		select {
		case <-ctx.Done():
			return nil
		case f := <-feeds:
			if a.apply(st, f) {
				arm()
			}
		case <-cfgChanged:
			cfgChanged = cfgs.Changed()
			arm()
		case <-timer.C:
			armed = false
			if err := a.sync(ctx, st, t, cfgs.Current(), fence); err != nil {
				return err
			}
		case <-tick.C:
			if err := a.sync(ctx, st, t, cfgs.Current(), fence); err != nil {
				return err
			}
		case p := <-pokes:
			desired, err := a.poke(ctx, st, t, cfgs.Current(), fence, p)
			p.reply <- pokeReply{desired: desired, err: err}
			if errors.Is(err, errdefs.ErrNotLeader) {
				return err
			}
		}
	}
}

func (st *state) ready() bool {
	for _, ok := range st.synced {
		if !ok {
			return false
		}
	}
	return true
}

// readyPods counts ready instances per revision.
func (st *state) readyPods() map[RevisionKey]int {
	out := map[RevisionKey]int{}
	for _, in := range st.instances {
		if in.Ready {
			out[RevisionKey{in.Namespace, in.Revision}]++
		}
	}
	return out
}

func (st *state) reachable() map[RevisionKey]bool {
	routes := make([]*v1.Route, 0, len(st.routes))
	for _, r := range st.routes {
		routes = append(routes, r)
	}
	cfgs := make([]*v1.Configuration, 0, len(st.cfgs))
	for _, c := range st.cfgs {
		cfgs = append(cfgs, c)
	}
	return Reachable(routes, cfgs)
}

// input gathers what the decision needs about k at now.
func (st *state) input(k RevisionKey, spec Spec, now time.Time, ready int, coll *collector) (Input, *revState) {
	cur := -1
	if s, ok := st.scale[k]; ok {
		cur = s.rec.Desired
	}
	rs := st.decisions[k]
	if rs == nil {
		rs = &revState{st: NewState(now, ready, cur >= 0), tracked: now}
		st.decisions[k] = rs
	}
	w := coll.read(k, now, spec.StableWindow, spec.PanicWindow)
	in := Input{Now: now, ReadyPods: ready, Current: cur,
		// Without any stat, silence means no traffic only once this leader
		// has listened for a whole stable window.
		HaveData: w.haveData || now.Sub(rs.tracked) >= spec.StableWindow}
	if spec.Metric == config.MetricRPS {
		in.Stable, in.Panic = w.stableRPS, w.panicRPS
	} else {
		in.Stable, in.Panic = w.stableConc, w.panicConc
	}
	return in, rs
}

// sync decides every revision, writes the scale records that changed and
// deletes those of revisions that no longer exist.
func (a *Autoscaler) sync(ctx context.Context, st *state, t *term, snap *config.Snapshot, fence *store.Fence) error {
	if !st.ready() {
		return nil
	}
	now := a.now()
	reach := st.reachable()
	ready := st.readyPods()
	live := make(map[RevisionKey]bool, len(st.revisions))
	for _, rev := range st.revisions {
		k := RevisionKey{rev.Metadata.Namespace, rev.Metadata.Name}
		live[k] = true
		spec := specFor(rev, snap, reach[k])
		in, rs := st.input(k, spec, now, ready[k], t.coll)
		d, next := Decide(spec, in, rs.st)
		rs.st = next
		if err := a.write(ctx, st, k, d, now, fence); err != nil {
			return err
		}
	}
	for k, cur := range st.scale {
		if live[k] {
			continue
		}
		err := a.st.Delete(ctx, store.ScaleKey(k.Namespace, k.Name), store.IfRevision(cur.modRev), store.WithFence(fence))
		if err == nil || errdefs.IsNotFound(err) {
			err = nil
			delete(st.scale, k)
			a.log.Info("scale deleted; revision is gone", "revision", k.String())
		}
		if err := a.check(ctx, "delete", k, err); err != nil {
			return err
		}
	}
	for k := range st.decisions {
		if !live[k] {
			delete(st.decisions, k)
		}
	}
	t.coll.forget(func(k RevisionKey) bool { return live[k] })
	return nil
}

// specFor is SpecFor with config-deployment's progress-deadline, the
// activation timeout.
func specFor(rev *v1.Revision, snap *config.Snapshot, reachable bool) Spec {
	spec := SpecFor(rev, snap.Autoscaler(), reachable)
	spec.ProgressDeadline = snap.Deployment().ProgressDeadline
	return spec
}

// ebcRewrite is how long an informational change of excess burst capacity
// alone waits before it is written.
const ebcRewrite = 10 * time.Second

// write stores d for k when it differs from what scale/ holds.
func (a *Autoscaler) write(ctx context.Context, st *state, k RevisionKey, d Decision, now time.Time, fence *store.Fence) error {
	cur, ok := st.scale[k]
	if ok && cur.rec.Desired == d.Desired && cur.rec.ActivatorInPath == d.ActivatorInPath && cur.rec.Panic == d.Panic &&
		(cur.rec.ExcessBurstCapacity == d.ExcessBurstCapacity || now.Sub(cur.rec.UpdatedAt) < ebcRewrite) {
		return nil
	}
	rec := cluster.Scale{Namespace: k.Namespace, Revision: k.Name, Desired: d.Desired, UpdatedAt: now.UTC(),
		ActivatorInPath: d.ActivatorInPath, ExcessBurstCapacity: finite(d.ExcessBurstCapacity), Panic: d.Panic}
	b, _ := json.Marshal(rec)
	rev, err := a.st.Put(ctx, store.ScaleKey(k.Namespace, k.Name), b, store.IfRevision(cur.modRev), store.WithFence(fence))
	if err == nil {
		st.scale[k] = scaleKV{rec: rec, modRev: rev}
		if !ok || cur.rec.Desired != d.Desired || cur.rec.ActivatorInPath != d.ActivatorInPath || cur.rec.Panic != d.Panic {
			was := -1
			if ok {
				was = cur.rec.Desired
			}
			a.log.Info("scale set", "revision", k.String(), "desired", d.Desired, "was", was,
				"activator_in_path", d.ActivatorInPath, "panic", d.Panic, "excess_burst_capacity", d.ExcessBurstCapacity)
		}
	}
	return a.check(ctx, "set", k, err)
}

func finite(f float64) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return f
}

// check sorts a write error: losing leadership ends the term; anything else
// (a conflict means our view is behind) is retried at the next tick, by
// which time the watch has caught up.
func (a *Autoscaler) check(ctx context.Context, what string, k RevisionKey, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errdefs.ErrNotLeader):
		return fmt.Errorf("%s scale of %s: %w", what, k, err)
	case ctx.Err() != nil:
		return nil
	}
	a.log.Warn("scale write failed; will retry", "op", what, "revision", k.String(), "error", err)
	return nil
}

// poke wakes a revision at zero at once.
func (a *Autoscaler) poke(ctx context.Context, st *state, t *term, snap *config.Snapshot, fence *store.Fence, p pokeReq) (int, error) {
	now := a.now()
	rev := st.findRevision(p.key)
	if rev == nil {
		return 0, fmt.Errorf("revision %s: %w", p.key, errdefs.ErrNotFound)
	}
	// The requests waiting count from now, so the next tick does not
	// decide zero again before the activator's own stat arrives.
	t.coll.record(p.key, "poke", now.Unix(), math.Max(1, float64(p.queued)), 0)
	ready := st.readyPods()[p.key]
	spec := specFor(rev, snap, st.reachable()[p.key])
	in, rs := st.input(p.key, spec, now, ready, t.coll)
	d, next, woke := Wake(spec, in, rs.st)
	if !woke {
		return max(0, in.Current), nil
	}
	rs.st = next
	if err := a.write(ctx, st, p.key, d, now, fence); err != nil {
		return 0, err
	}
	if cur, ok := st.scale[p.key]; ok {
		return cur.rec.Desired, nil
	}
	return 0, fmt.Errorf("scale of %s not written: %w", p.key, errdefs.ErrUnavailable)
}

func (st *state) findRevision(k RevisionKey) *v1.Revision {
	for _, r := range st.revisions {
		if r.Metadata.Namespace == k.Namespace && r.Metadata.Name == k.Name {
			return r
		}
	}
	return nil
}

// apply folds a feed into st and says whether a decision should follow.
func (a *Autoscaler) apply(st *state, f store.Feed) bool {
	st.synced[f.Src] = true
	if f.Reset {
		switch f.Src {
		case srcRevisions:
			clear(st.revisions)
		case srcRoutes:
			clear(st.routes)
		case srcConfigurations:
			clear(st.cfgs)
		case srcInstances:
			clear(st.instances)
		case srcScale:
			// Keep what our own writes made newer than the list.
			for k, cur := range st.scale {
				if cur.modRev <= f.Rev {
					delete(st.scale, k)
				}
			}
		}
	}
	for _, key := range f.Dels {
		switch f.Src {
		case srcRevisions:
			delete(st.revisions, key)
		case srcRoutes:
			delete(st.routes, key)
		case srcConfigurations:
			delete(st.cfgs, key)
		case srcInstances:
			delete(st.instances, key)
		case srcScale:
			ns, name := store.SplitLast(key)
			delete(st.scale, RevisionKey{ns, name})
		}
	}
	for _, kv := range f.Puts {
		var err error
		switch f.Src {
		case srcRevisions:
			v := new(v1.Revision)
			if err = json.Unmarshal(kv.Value, v); err == nil {
				v.Metadata.Namespace, v.Metadata.Name = store.SplitLast(kv.Key)
				st.revisions[kv.Key] = v
			}
		case srcRoutes:
			v := new(v1.Route)
			if err = json.Unmarshal(kv.Value, v); err == nil {
				v.Metadata.Namespace, v.Metadata.Name = store.SplitLast(kv.Key)
				st.routes[kv.Key] = v
			}
		case srcConfigurations:
			v := new(v1.Configuration)
			if err = json.Unmarshal(kv.Value, v); err == nil {
				v.Metadata.Namespace, v.Metadata.Name = store.SplitLast(kv.Key)
				st.cfgs[kv.Key] = v
			}
		case srcInstances:
			var v cluster.Instance
			if err = json.Unmarshal(kv.Value, &v); err == nil {
				st.instances[kv.Key] = v
			}
		case srcScale:
			var v cluster.Scale
			ns, name := store.SplitLast(kv.Key)
			k := RevisionKey{ns, name}
			if cur, ok := st.scale[k]; ok && cur.modRev > kv.ModRevision {
				continue // an echo older than our own later write
			}
			if err = json.Unmarshal(kv.Value, &v); err != nil {
				// Remember it so the next sync overwrites or deletes it.
				v.Desired = -1
			}
			st.scale[k] = scaleKV{rec: v, modRev: kv.ModRevision}
		}
		if err != nil {
			a.log.Warn("skipping undecodable record", "key", kv.Key, "error", err)
		}
	}
	// Our own scale writes echo back; only a relist asks for a decision.
	return f.Src != srcScale || f.Reset
}
