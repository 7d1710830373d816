package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// Options configure the controller.
type Options struct {
	// Config is the live cluster configuration (config-domain,
	// config-network); nil uses Domain, for tests.
	Config ConfigSource
	// Domain shapes URLs when Config is nil.
	Domain resources.DomainConfig
	// Now is the clock of status timestamps and ages; default time.Now.
	Now func() time.Time
}

// Controller runs the reconcilers while it leads.
type Controller struct {
	st   store.Store
	opts Options
	log  *slog.Logger
}

// New returns a controller over st.
func New(st store.Store, opts Options, log *slog.Logger) *Controller {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Domain = opts.Domain.WithDefaults()
	return &Controller{st: st, opts: opts, log: log.With("component", "controller")}
}

// key kinds in the work queue.
const (
	kService  = "service"
	kConfig   = "configuration"
	kRevision = "revision"
	kRoute    = "route"
)

type workKey struct{ kind, ns, name string }

func (k workKey) String() string { return k.kind + "/" + k.ns + "/" + k.name }

// Lead runs the reconcile loop until ctx ends or the fence fails
// (errdefs.ErrNotLeader). Two goroutines, both joined before it returns: the
// mirror following the store, and the loop owning the caches, the queue and
// every reconcile. Every write goes through a store fenced with fence.
func (c *Controller) Lead(ctx context.Context, fence *store.Fence) error {
	c.waitConfig(ctx)
	if ctx.Err() != nil {
		return nil
	}
	l := newLeader(c, store.Fenced(c.st, fence), time.Now)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		l.mirror.Run(gctx, c.st, c.log)
		return nil
	})
	g.Go(func() error { return l.run(gctx) })
	return g.Wait()
}

// leader is the state of one term: typed caches of everything the
// reconcilers read, the indexes their change callbacks keep, and the queue
// those callbacks feed. Only the loop goroutine touches it.
type leader struct {
	*reconciler
	mirror  *store.Mirror
	q       *queue
	tracker *tracker

	svcs    *cached[v1.Service]
	cfgs    *cached[v1.Configuration]
	revs    *cached[v1.Revision]
	rts     *cached[v1.Route]
	dms     *cached[v1beta1.DomainMapping]
	insts   *store.Cache[cluster.Instance]
	claimsC *store.Cache[claim]
	k8sSvcs *store.Cache[k8sService]
}

// reconciler is what the reconcile functions use: reads from listers, writes
// through the fenced store. Tests build one over a fake store.
type reconciler struct {
	opts Options
	log  *slog.Logger

	services       objects[v1.Service]
	configurations objects[v1.Configuration]
	revisions      objects[v1.Revision]
	routes         objects[v1.Route]
	domainMappings objects[v1beta1.DomainMapping]
	instances      instanceLister
	claims         domainClaims
	// k8sServices are the core/v1 Services Routes keep (services/).
	k8sServices k8sServices

	// waiting is, by namespace/revision, the last instance seen waiting
	// in CreateContainerConfigError while the revision has none ready;
	// owned by the leader's goroutine, lost with the term.
	waiting map[string]cluster.Instance
}

// newLeader builds the caches over fenced (reads follow the plain store;
// every write of the term goes through fenced) and wires their change
// callbacks to the queue. clock drives retry backoff.
func newLeader(c *Controller, fenced store.Store, clock func() time.Time) *leader {
	reg := registry.New(fenced)
	l := &leader{
		q:       newQueue(clock, retryBase, retryCap),
		tracker: newTracker(),
		svcs:    newCached(reg.Services(), c.log),
		cfgs:    newCached(reg.Configurations(), c.log),
		revs:    newCached(reg.Revisions(), c.log),
		rts:     newCached(reg.Routes(), c.log),
		dms:     newCached(reg.DomainMappings(), c.log),
		insts:   store.NewCache(store.InstancePrefix, store.JSON[cluster.Instance], c.log),
		claimsC: store.NewCache(store.DomainClaimsPrefix, decodeClaim, c.log),
		k8sSvcs: store.NewCache(store.ServicesPrefix, decodeK8sService, c.log),
	}
	idx := newInstanceIndex()
	l.reconciler = &reconciler{
		opts: c.opts, log: c.log,
		services: l.svcs, configurations: l.cfgs, revisions: l.revs, routes: l.rts, domainMappings: l.dms,
		instances:   idx,
		claims:      &claimStore{st: fenced, cache: l.claimsC},
		k8sServices: &k8sServiceStore{st: fenced, cache: l.k8sSvcs},
	}
	add := l.q.Add
	l.svcs.cache.OnChange(func(ch store.Change[*v1.Service]) {
		m := changed(ch).Metadata
		add(workKey{kService, m.Namespace, m.Name})
		// A deleted Service's children are found through their labels.
		add(workKey{kConfig, m.Namespace, m.Name})
		add(workKey{kRoute, m.Namespace, m.Name})
		l.addDomainMappingsOf(m.Namespace, m.Name)
	})
	l.cfgs.cache.OnChange(func(ch store.Change[*v1.Configuration]) {
		m := changed(ch).Metadata
		add(workKey{kConfig, m.Namespace, m.Name})
		add(workKey{kService, m.Namespace, m.Labels[v1.ServiceLabelKey]})
		if owner := controllerNamed(&m, v1.KindService); owner != "" {
			add(workKey{kService, m.Namespace, owner})
		}
		l.addRoutesOf(ref{kConfig, m.Namespace, m.Name})
	})
	l.revs.cache.OnChange(func(ch store.Change[*v1.Revision]) {
		m := changed(ch).Metadata
		add(workKey{kRevision, m.Namespace, m.Name})
		cfg := m.Labels[v1.ConfigurationLabelKey]
		if owner := controllerNamed(&m, v1.KindConfiguration); owner != "" {
			cfg = owner
		}
		add(workKey{kConfig, m.Namespace, cfg})
		l.addRoutesOf(ref{kRevision, m.Namespace, m.Name})
		if cfg != "" {
			l.addRoutesOf(ref{kConfig, m.Namespace, cfg})
		}
	})
	l.rts.cache.OnChange(func(ch store.Change[*v1.Route]) {
		m := changed(ch).Metadata
		if ch.Deleted {
			l.tracker.Untrack(m.Namespace, m.Name)
		} else {
			l.tracker.Track(ch.New)
		}
		add(workKey{kRoute, m.Namespace, m.Name})
		add(workKey{kService, m.Namespace, m.Labels[v1.ServiceLabelKey]})
		l.addDomainMappingsOf(m.Namespace, m.Name)
	})
	l.dms.cache.OnChange(func(ch store.Change[*v1beta1.DomainMapping]) {
		m := changed(ch).Metadata
		add(workKey{kDomainMapping, m.Namespace, m.Name})
	})
	l.insts.OnChange(func(ch store.Change[cluster.Instance]) {
		idx.apply(ch)
		if ch.HadOld {
			add(workKey{kRevision, ch.Old.Namespace, ch.Old.Revision})
		}
		if !ch.Deleted {
			add(workKey{kRevision, ch.New.Namespace, ch.New.Revision})
		}
	})
	// A Route's Service that changed or went (or is listed at the start of
	// a term, when its Route may have gone meanwhile) is the Route's to
	// check.
	l.k8sSvcs.OnChange(func(ch store.Change[k8sService]) {
		ns, name := store.SplitLast(ch.Key)
		add(workKey{kRoute, ns, name})
	})
	l.mirror = store.NewMirror(l.svcs.cache, l.cfgs.cache, l.revs.cache, l.rts.cache, l.dms.cache, l.insts, l.claimsC, l.k8sSvcs)
	return l
}

// changed is the object a change is about: the new value, or the last one
// of a deleted key.
func changed[T any](ch store.Change[*T]) *T {
	if ch.Deleted {
		return ch.Old
	}
	return ch.New
}

func (l *leader) addRoutesOf(r ref) {
	for _, name := range l.tracker.RoutesFor(r) {
		l.q.Add(workKey{kRoute, r.ns, name})
	}
}

// addDomainMappingsOf queues the mappings in ns whose ref names name (a
// Service or the Route it owns share the name).
func (l *leader) addDomainMappingsOf(ns, name string) {
	prefix := l.dms.typed.Prefix(ns)
	l.dms.cache.Range(func(k string, dm *v1beta1.DomainMapping) bool {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix && dm.Spec.Ref.Name == name {
			l.q.Add(workKey{kDomainMapping, ns, dm.Metadata.Name})
		}
		return true
	})
}

// run is the loop: it applies every feed, and once all caches have been
// listed reconciles one key at a time when no feed is waiting, so bursts
// collapse into one pass. It returns nil when ctx ends and the error when
// leadership is lost.
func (l *leader) run(ctx context.Context) error {
	feeds := l.mirror.Feeds()
	t := &loopTimers{retry: time.NewTimer(time.Hour), resync: time.NewTimer(l.resyncPeriod())}
	defer t.retry.Stop()
	defer t.resync.Stop()
	if l.opts.Config != nil {
		t.cfgChanged = l.opts.Config.Changed()
		t.lastCfg = l.opts.Config.Current()
	}
	for {
		if at, ok := l.q.NextRetry(); ok && !at.Equal(t.armed) {
			t.armed = at
			t.retry.Reset(time.Until(at))
		}
		if l.q.Len() == 0 || !l.mirror.Synced() {
			select {
			case <-ctx.Done():
				return nil
			case f := <-feeds:
				l.mirror.Apply(f)
			case <-t.retry.C:
				l.onRetry(t)
			case <-t.cfgChanged:
				l.onConfigChanged(t)
			case <-t.resync.C:
				l.onResync(t)
			}
			continue
		}
		// Take in whatever else is already waiting before working.
	drain:
		for {
			select {
			case f := <-feeds:
				l.mirror.Apply(f)
			case <-t.retry.C:
				l.onRetry(t)
			case <-t.cfgChanged:
				l.onConfigChanged(t)
			case <-t.resync.C:
				l.onResync(t)
			default:
				break drain
			}
		}
		k, _ := l.q.Get()
		more, err := l.reconcile(ctx, k)
		for _, m := range more {
			l.q.Add(m)
		}
		if err == nil {
			l.q.Forget(k)
			l.q.Done(k)
			continue
		}
		if errors.Is(err, errdefs.ErrNotLeader) {
			return fmt.Errorf("reconcile %s: %w", k, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		// Conflicts and races on create are the normal cost of reading a
		// cache: the next pass sees the newer object.
		if !errdefs.IsConflict(err) && !errdefs.IsAlreadyExists(err) {
			l.log.Warn("reconcile failed; will retry", "key", k.String(), "error", err, "failures", l.q.Failures(k)+1)
		}
		l.q.AddRateLimited(k)
		l.q.Done(k)
	}
}

// loopTimers is the loop's non-feed wake-ups.
type loopTimers struct {
	retry  *time.Timer
	armed  time.Time // when retry fires; zero when idle
	resync *time.Timer
	// cfgChanged closes at the next cluster config change (nil without a
	// ConfigSource); lastCfg is the snapshot routes were last queued for.
	cfgChanged <-chan struct{}
	lastCfg    any
}

func (l *leader) onRetry(t *loopTimers) {
	t.armed = time.Time{}
	l.q.Promote()
}

// onConfigChanged queues every Route, so a new domain, template or scheme
// reaches every URL without a restart.
func (l *leader) onConfigChanged(t *loopTimers) {
	// Take the next channel before reading the snapshot, so a change
	// landing in between is never missed.
	t.cfgChanged = l.opts.Config.Changed()
	cur := l.opts.Config.Current()
	if cur == t.lastCfg {
		return
	}
	t.lastCfg = cur
	l.addAll(l.rts.cache.Keys(), kRoute)
	if n := l.rts.cache.Len(); n > 0 {
		l.log.Info("cluster config changed; reconciling routes", "routes", n)
	}
}

// onResync queues every Configuration and Revision from the caches, so
// age-based GC and the progress deadline fire without a change to trigger
// them.
func (l *leader) onResync(t *loopTimers) {
	l.addAll(l.cfgs.cache.Keys(), kConfig)
	l.addAll(l.revs.cache.Keys(), kRevision)
	t.resync.Reset(l.resyncPeriod())
}

// addAll queues every registry key of kind.
func (l *leader) addAll(keys []string, kind string) {
	for _, k := range keys {
		ns, name := store.SplitLast(k)
		l.q.Add(workKey{kind, ns, name})
	}
}

func (r *reconciler) reconcile(ctx context.Context, k workKey) ([]workKey, error) {
	switch k.kind {
	case kService:
		return r.reconcileService(ctx, k.ns, k.name)
	case kConfig:
		return r.reconcileConfiguration(ctx, k.ns, k.name)
	case kRevision:
		return r.reconcileRevision(ctx, k.ns, k.name)
	case kRoute:
		return r.reconcileRoute(ctx, k.ns, k.name)
	case kDomainMapping:
		return r.reconcileDomainMapping(ctx, k.ns, k.name)
	}
	return nil, fmt.Errorf("unknown key kind %q", k.kind)
}

func statusJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
