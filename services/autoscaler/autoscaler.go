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

	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
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
	// nodeOf maps an instance name to the node it runs on, from instances/
	// (kept by the leading loop, read by the gRPC handlers): under mutual
	// TLS an agent's stats count only for instances on its own node.
	nodeOf sync.Map
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

// state is the leader's view. Only the goroutine running loop touches it.
type state struct {
	// w is the store fenced with this term: the only way the loop writes.
	w         store.Store
	revisions *store.Cache[*v1.Revision]
	routes    *store.Cache[*v1.Route]
	cfgs      *store.Cache[*v1.Configuration]
	scale     *store.Cache[scaleKV]
	instances *store.Cache[cluster.Instance]
	mirror    *store.Mirror
	// per revision: decision state and when this leader first saw it.
	decisions map[RevisionKey]*revState
}

type revState struct {
	st      State
	tracked time.Time
}

// scaleKV is a scale record with the revision our compare-and-swap writes
// compare against.
type scaleKV struct {
	rec    cluster.Scale
	modRev int64
}

func (a *Autoscaler) newState(w store.Store) *state {
	st := &state{
		w:         w,
		revisions: store.NewCache(store.RevisionsPrefix, a.reg.Revisions().Decode, a.log),
		routes:    store.NewCache(a.reg.Routes().Prefix(""), a.reg.Routes().Decode, a.log),
		cfgs:      store.NewCache(a.reg.Configurations().Prefix(""), a.reg.Configurations().Decode, a.log),
		scale:     store.NewCache(store.ScalePrefix, a.decodeScale, a.log),
		instances: store.NewCache(store.InstancePrefix, store.JSON[cluster.Instance], a.log),
		decisions: map[RevisionKey]*revState{},
	}
	a.nodeOf.Clear()
	st.instances.OnChange(func(c store.Change[cluster.Instance]) {
		if c.Deleted {
			a.nodeOf.Delete(c.Old.Instance)
		} else {
			a.nodeOf.Store(c.New.Instance, c.New.Node)
		}
	})
	st.mirror = store.NewMirror(st.revisions, st.routes, st.cfgs, st.scale, st.instances)
	return st
}

// ownStats keeps the stats of b that an agent of node may report: those of
// instances the store places on that node.
func (a *Autoscaler) ownStats(b *pb.MetricBatch, node string) *pb.MetricBatch {
	out := &pb.MetricBatch{Source: b.GetSource()}
	for _, st := range b.GetStats() {
		if n, ok := a.nodeOf.Load(st.GetPodName()); ok && n == node {
			out.Stats = append(out.Stats, st)
		} else {
			a.log.Debug("dropped a stat of an instance not on the sender's node", "node", node, "instance", st.GetPodName())
		}
	}
	return out
}

// decodeScale never fails: an undecodable record is kept as Desired -1, so
// the next sync overwrites or deletes it (compare-and-swap on its revision).
func (a *Autoscaler) decodeScale(kv store.KV) (scaleKV, error) {
	v, err := store.JSON[cluster.Scale](kv)
	if err != nil {
		a.log.Warn("undecodable scale record; will rewrite it", "key", kv.Key, "error", err)
		v = cluster.Scale{Desired: -1}
	}
	return scaleKV{rec: v, modRev: kv.ModRevision}, nil
}

// Lead keeps scale/ in line with Decide until ctx ends or leadership is
// lost (a fenced write answers errdefs.ErrNotLeader, returned). Every write
// goes through a store fenced with fence, so none can be made without it.
func (a *Autoscaler) Lead(ctx context.Context, fence *store.Fence) error {
	g, ctx := errgroup.WithContext(ctx)
	cfgs := a.opts.Config
	var cfgSynced <-chan struct{} // nil: a caller's source, current already
	if cfgs == nil {
		w := liveconfig.NewWatcher(a.st, a.log)
		g.Go(func() error { return w.Run(ctx) })
		cfgs, cfgSynced = w, w.Synced()
	}
	st := a.newState(store.Fenced(a.st, fence))
	g.Go(func() error { st.mirror.Run(ctx, st.w, a.log); return nil })
	g.Go(func() error { return a.loop(ctx, st, cfgs, cfgSynced) })
	return g.Wait()
}

// loop owns st until ctx ends or a write finds this process deposed. It
// starts the term once the config (cfgSynced, when not nil) has been read.
func (a *Autoscaler) loop(ctx context.Context, st *state, cfgs ConfigSource, cfgSynced <-chan struct{}) error {
	if cfgSynced != nil {
		select {
		case <-cfgSynced:
		case <-ctx.Done():
			return nil
		}
	}
	t := &term{coll: newCollector(), pokes: make(chan pokeReq, 64), done: make(chan struct{})}
	defer close(t.done)
	// Stats count from now on; pokes wait in the channel until the first
	// full view.
	a.term.Store(t)
	defer a.term.Store(nil)

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
		if st.mirror.Synced() {
			pokes = t.pokes
		}
		select {
		case <-ctx.Done():
			return nil
		case f := <-st.mirror.Feeds():
			// Our own scale writes echo back; only a relist asks for a
			// decision.
			if src, _ := st.mirror.Apply(f); src != store.Source(st.scale) || f.Reset {
				arm()
			}
		case <-cfgChanged:
			cfgChanged = cfgs.Changed()
			arm()
		case <-timer.C:
			armed = false
			if err := a.sync(ctx, st, t, cfgs.Current()); err != nil {
				return err
			}
		case <-tick.C:
			if err := a.sync(ctx, st, t, cfgs.Current()); err != nil {
				return err
			}
		case p := <-pokes:
			desired, err := a.poke(ctx, st, t, cfgs.Current(), p)
			p.reply <- pokeReply{desired: desired, err: err}
			if errors.Is(err, errdefs.ErrNotLeader) {
				return err
			}
		}
	}
}

// readyPods counts ready instances per revision.
func (st *state) readyPods() map[RevisionKey]int {
	out := map[RevisionKey]int{}
	for _, in := range st.instances.Values() {
		if in.Ready {
			out[RevisionKey{in.Namespace, in.Revision}]++
		}
	}
	return out
}

func (st *state) reachable() map[RevisionKey]bool {
	return Reachable(st.routes.Values(), st.cfgs.Values())
}

// input gathers what the decision needs about k at now.
func (st *state) input(k RevisionKey, spec Spec, now time.Time, ready int, coll *collector) (Input, *revState) {
	cur := -1
	if s, ok := st.scale.Get(store.ScaleKey(k.Namespace, k.Name)); ok {
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
func (a *Autoscaler) sync(ctx context.Context, st *state, t *term, snap *config.Snapshot) error {
	if !st.mirror.Synced() {
		return nil
	}
	now := a.now()
	reach := st.reachable()
	ready := st.readyPods()
	live := make(map[RevisionKey]bool, st.revisions.Len())
	for _, rev := range st.revisions.Values() {
		k := RevisionKey{rev.Metadata.Namespace, rev.Metadata.Name}
		live[k] = true
		spec := specFor(rev, snap, reach[k])
		in, rs := st.input(k, spec, now, ready[k], t.coll)
		d, next := Decide(spec, in, rs.st)
		rs.st = next
		if err := a.write(ctx, st, k, d, now); err != nil {
			return err
		}
	}
	for _, key := range st.scale.Keys() {
		ns, name := store.SplitLast(key)
		k := RevisionKey{ns, name}
		if live[k] {
			continue
		}
		cur, _ := st.scale.Get(key)
		err := st.w.Delete(ctx, key, store.IfRevision(cur.modRev))
		if err == nil || errdefs.IsNotFound(err) {
			err = nil
			st.scale.Forget(key)
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
func (a *Autoscaler) write(ctx context.Context, st *state, k RevisionKey, d Decision, now time.Time) error {
	key := store.ScaleKey(k.Namespace, k.Name)
	cur, ok := st.scale.Get(key)
	if ok && cur.rec.Desired == d.Desired && cur.rec.ActivatorInPath == d.ActivatorInPath && cur.rec.Panic == d.Panic &&
		(cur.rec.ExcessBurstCapacity == d.ExcessBurstCapacity || now.Sub(cur.rec.UpdatedAt) < ebcRewrite) {
		return nil
	}
	rec := cluster.Scale{Namespace: k.Namespace, Revision: k.Name, Desired: d.Desired, UpdatedAt: now.UTC(),
		ActivatorInPath: d.ActivatorInPath, ExcessBurstCapacity: finite(d.ExcessBurstCapacity), Panic: d.Panic}
	b, _ := json.Marshal(rec)
	rev, err := st.w.Put(ctx, key, b, store.IfRevision(cur.modRev))
	if err == nil {
		st.scale.Observe(key, scaleKV{rec: rec, modRev: rev}, rev)
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
func (a *Autoscaler) poke(ctx context.Context, st *state, t *term, snap *config.Snapshot, p pokeReq) (int, error) {
	now := a.now()
	rev, ok := st.revisions.Get(a.reg.Revisions().Key(p.key.Namespace, p.key.Name))
	if !ok {
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
	if err := a.write(ctx, st, p.key, d, now); err != nil {
		return 0, err
	}
	if cur, ok := st.scale.Get(store.ScaleKey(p.key.Namespace, p.key.Name)); ok {
		return cur.rec.Desired, nil
	}
	return 0, fmt.Errorf("scale of %s not written: %w", p.key, errdefs.ErrUnavailable)
}
