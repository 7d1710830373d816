package autoscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/errdefs"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
)

// Options tune the leader loop. The zero value is usable.
type Options struct {
	// Debounce coalesces a burst of registry changes into one decision.
	// Optional, default 1ms: the initial scale is on the create path.
	Debounce time.Duration
}

// Autoscaler writes scale/ while it leads.
type Autoscaler struct {
	st   store.Store
	reg  *registry.Registry
	opts Options
	log  *slog.Logger
	now  func() time.Time
}

// New returns an autoscaler over st; reg gives it the registry's prefixes.
func New(st store.Store, reg *registry.Registry, opts Options, log *slog.Logger) *Autoscaler {
	if opts.Debounce <= 0 {
		opts.Debounce = time.Millisecond
	}
	return &Autoscaler{st: st, reg: reg, opts: opts, log: log.With("component", "autoscaler"), now: time.Now}
}

const (
	srcRevisions = iota
	srcRoutes
	srcConfigurations
	srcScale
	numSources
)

// state is the leader's view. Only the Lead goroutine touches it.
type state struct {
	revisions map[string]*v1.Revision
	routes    map[string]*v1.Route
	cfgs      map[string]*v1.Configuration
	scale     map[RevisionKey]scaleKV
	synced    [numSources]bool
	rev       [numSources]int64
}

type scaleKV struct {
	desired int
	modRev  int64
}

// Lead keeps scale/ in line with Decide until ctx ends or leadership is
// lost (a fenced write answers errdefs.ErrNotLeader, returned).
func (a *Autoscaler) Lead(ctx context.Context, fence *store.Fence) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	feeds := make(chan store.Feed, 64)
	prefixes := [numSources]string{
		srcRevisions:      a.reg.Revisions().Prefix(""),
		srcRoutes:         a.reg.Routes().Prefix(""),
		srcConfigurations: a.reg.Configurations().Prefix(""),
		srcScale:          store.ScalePrefix,
	}
	for src, prefix := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store.Follow(ctx, a.st, src, prefix, feeds, a.log)
		}()
	}
	st := &state{revisions: map[string]*v1.Revision{}, routes: map[string]*v1.Route{},
		cfgs: map[string]*v1.Configuration{}, scale: map[RevisionKey]scaleKV{}}
	// lastWrite: never decide on a view of scale/ older than our own
	// writes, or a stale ModRevision makes every CAS fail.
	var lastWrite int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func(d time.Duration) {
		if !armed {
			armed = true
			timer.Reset(d)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-feeds:
			a.apply(st, f)
			arm(a.opts.Debounce)
		case <-timer.C:
			armed = false
			if !st.ready(lastWrite) {
				continue
			}
			rev, retry, err := a.sync(ctx, st, fence)
			if err != nil {
				return err
			}
			lastWrite = max(lastWrite, rev)
			if retry {
				arm(time.Second)
			}
		}
	}
}

func (st *state) ready(lastWrite int64) bool {
	for _, ok := range st.synced {
		if !ok {
			return false
		}
	}
	return st.rev[srcScale] >= lastWrite
}

// sync writes the scale records that differ from the decision and deletes
// those of revisions that no longer exist.
func (a *Autoscaler) sync(ctx context.Context, st *state, fence *store.Fence) (newest int64, retry bool, err error) {
	revs := make([]*v1.Revision, 0, len(st.revisions))
	for _, r := range st.revisions {
		revs = append(revs, r)
	}
	routes := make([]*v1.Route, 0, len(st.routes))
	for _, r := range st.routes {
		routes = append(routes, r)
	}
	cfgs := make([]*v1.Configuration, 0, len(st.cfgs))
	for _, c := range st.cfgs {
		cfgs = append(cfgs, c)
	}
	want := Decide(revs, routes, cfgs)
	check := func(what string, k RevisionKey, err error) error {
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errdefs.ErrNotLeader):
			return fmt.Errorf("%s scale of %s: %w", what, k, err)
		case ctx.Err() != nil:
			return nil
		}
		// A conflict means our view is behind; the watch catches up and
		// brings another decision, but retry in case nothing else changes.
		a.log.Warn("scale write failed; will retry", "op", what, "revision", k.String(), "error", err)
		retry = true
		return nil
	}
	for k, n := range want {
		cur, ok := st.scale[k]
		if ok && cur.desired == n {
			continue
		}
		b, _ := json.Marshal(cluster.Scale{Namespace: k.Namespace, Revision: k.Name, Desired: n, UpdatedAt: a.now().UTC()})
		rev, err := a.st.Put(ctx, store.ScaleKey(k.Namespace, k.Name), b, store.IfRevision(cur.modRev), store.WithFence(fence))
		if err == nil {
			newest = max(newest, rev)
			st.scale[k] = scaleKV{desired: n, modRev: rev}
			a.log.Info("scale set", "revision", k.String(), "desired", n, "was", cur.desired)
		}
		if err := check("set", k, err); err != nil {
			return newest, retry, err
		}
	}
	for k, cur := range st.scale {
		if _, ok := want[k]; ok {
			continue
		}
		err := a.st.Delete(ctx, store.ScaleKey(k.Namespace, k.Name), store.IfRevision(cur.modRev), store.WithFence(fence))
		if err == nil || errdefs.IsNotFound(err) {
			err = nil
			delete(st.scale, k)
			a.log.Info("scale deleted; revision is gone", "revision", k.String())
		}
		if err := check("delete", k, err); err != nil {
			return newest, retry, err
		}
	}
	return newest, retry, nil
}

func (a *Autoscaler) apply(st *state, f store.Feed) {
	st.synced[f.Src] = true
	st.rev[f.Src] = max(st.rev[f.Src], f.Rev)
	if f.Reset {
		st.rev[f.Src] = f.Rev
		switch f.Src {
		case srcRevisions:
			clear(st.revisions)
		case srcRoutes:
			clear(st.routes)
		case srcConfigurations:
			clear(st.cfgs)
		case srcScale:
			clear(st.scale)
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
		case srcScale:
			var v cluster.Scale
			ns, name := store.SplitLast(kv.Key)
			if err = json.Unmarshal(kv.Value, &v); err != nil {
				// Remember it so the next sync overwrites or deletes it.
				v.Desired = -1
			}
			st.scale[RevisionKey{ns, name}] = scaleKV{desired: v.Desired, modRev: kv.ModRevision}
		}
		if err != nil {
			a.log.Warn("skipping undecodable record", "key", kv.Key, "error", err)
		}
	}
}
