package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
)

// snapshot is the cluster config of the moment (defaults without a source).
func (c *Controller) snapshot() *config.Snapshot {
	if c.opts.Config == nil {
		return config.DefaultSnapshot()
	}
	return c.opts.Config.Current()
}

// collectRevisionGarbage labels the revisions of configuration cfgName with
// their routing state (active when a route's traffic reaches them, else
// reserve, stamping when that changed) and deletes the stale non-active
// ones the way Knative's config-gc says:
//
//   - never the configuration's latest ready (or latest created) revision,
//     a routed one, or one annotated serving.knative.dev/no-gc: "true";
//   - a non-active revision is stale once it is older than
//     retain-since-create-time and inactive for longer than
//     retain-since-last-active-time (a disabled bound does not hold it);
//   - newest-active first, stale revisions beyond min-non-active-revisions
//     go, and so does every non-active one beyond max-non-active-revisions.
func (c *Controller) collectRevisionGarbage(ctx context.Context, w *writer, ns, cfgName, latestReady, latestCreated string) error {
	revs, _, err := c.reg.Revisions().List(ctx, ns)
	if err != nil {
		return err
	}
	routes, _, err := c.reg.Routes().List(ctx, ns)
	if err != nil {
		return err
	}
	routed := map[string]bool{}
	for _, r := range routes {
		for _, t := range r.Status.Traffic {
			routed[t.RevisionName] = true
		}
		for _, t := range r.Spec.Traffic {
			routed[t.RevisionName] = true
		}
	}
	now := c.opts.Now()
	var mine []*v1.Revision
	for _, r := range revs {
		if r.Metadata.Labels[v1.ConfigurationLabelKey] != cfgName {
			continue
		}
		state := v1.RoutingStateReserve
		if routed[r.Metadata.Name] {
			state = v1.RoutingStateActive
		}
		if r.Metadata.Labels[v1.RoutingStateLabelKey] != state {
			if r.Metadata.Labels == nil {
				r.Metadata.Labels = map[string]string{}
			}
			if r.Metadata.Annotations == nil {
				r.Metadata.Annotations = map[string]string{}
			}
			r.Metadata.Labels[v1.RoutingStateLabelKey] = state
			r.Metadata.Annotations[v1.RoutingStateModifiedAnnotation] = now.UTC().Format(time.RFC3339Nano)
			if r, err = c.reg.Revisions().Update(ctx, r, w.opt()); err != nil {
				return fmt.Errorf("label revision routing state: %w", err)
			}
		}
		mine = append(mine, r)
	}
	gc := c.snapshot().GC()
	lo, hi := int(gc.MinNonActiveRevisions), int(gc.MaxNonActiveRevisions)
	if len(mine) <= lo || (hi == config.Disabled && gc.RetainSinceCreateTime == config.Disabled && gc.RetainSinceLastActiveTime == config.Disabled) {
		return nil
	}
	// Most recently active first; ties (same instant) newest name first.
	sort.SliceStable(mine, func(i, j int) bool {
		a, b := lastActive(mine[i]), lastActive(mine[j])
		if !a.Equal(b) {
			return a.After(b)
		}
		return mine[i].Metadata.Name > mine[j].Metadata.Name
	})
	stale, nonActive := 0, 0
	for _, r := range mine {
		name := r.Metadata.Name
		if name == latestReady || name == latestCreated || routed[name] ||
			strings.EqualFold(r.Metadata.Annotations[v1.NoGCAnnotation], "true") ||
			r.Metadata.Labels[v1.RoutingStateLabelKey] != v1.RoutingStateReserve {
			continue
		}
		nonActive++
		if isStale(gc, r, now) {
			stale++
		}
		switch {
		case stale > lo:
			c.log.Info("deleting stale revision", "namespace", ns, "revision", name)
		case hi != config.Disabled && nonActive > hi:
			c.log.Info("deleting oldest non-active revision above max-non-active-revisions", "namespace", ns, "revision", name, "max", hi)
		default:
			continue
		}
		if err := ignoreNotFound(c.reg.Revisions().Delete(ctx, ns, name, w.opt())); err != nil {
			return fmt.Errorf("collect revision %q: %w", name, err)
		}
	}
	return nil
}

// isStale: created longer ago than retain-since-create-time and inactive
// for longer than retain-since-last-active-time; both disabled = never.
func isStale(gc *config.GC, r *v1.Revision, now time.Time) bool {
	sinceCreate, sinceActive := gc.RetainSinceCreateTime, gc.RetainSinceLastActiveTime
	if sinceCreate == config.Disabled && sinceActive == config.Disabled {
		return false
	}
	if ct := r.Metadata.CreationTimestamp; sinceCreate != config.Disabled && ct != nil && now.Sub(ct.Time) <= sinceCreate {
		return false
	}
	if sinceActive != config.Disabled && now.Sub(lastActive(r)) <= sinceActive {
		return false
	}
	return true
}

// lastActive is when the revision last changed routing state, else when
// it was created.
func lastActive(r *v1.Revision) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, r.Metadata.Annotations[v1.RoutingStateModifiedAnnotation]); err == nil {
		return t
	}
	if r.Metadata.CreationTimestamp != nil {
		return r.Metadata.CreationTimestamp.Time
	}
	return time.Time{}
}

// resyncPeriod is how often time-based decisions (revision GC ages, the
// progress deadline) are revisited without an event: a quarter of the
// shortest enabled bound, between one second and one minute.
func (c *Controller) resyncPeriod() time.Duration {
	snap := c.snapshot()
	gc := snap.GC()
	d := snap.Deployment().ProgressDeadline
	for _, b := range []time.Duration{gc.RetainSinceCreateTime, gc.RetainSinceLastActiveTime} {
		if b > 0 && b < d {
			d = b
		}
	}
	d /= 4
	switch {
	case d < time.Second:
		return time.Second
	case d > time.Minute:
		return time.Minute
	}
	return d
}

// resync re-feeds every Configuration and Revision periodically as put
// events, exactly as a re-list would, so age-based GC and the progress
// deadline fire without a change to trigger them.
func (c *Controller) resync(ctx context.Context, out chan<- store.Event) {
	for {
		select {
		case <-time.After(c.resyncPeriod()):
		case <-ctx.Done():
			return
		}
		for _, res := range []string{v1.ResourceConfigurations, v1.ResourceRevisions} {
			kvs, _, err := c.st.List(ctx, store.RegistryListPrefix(v1.Group, res, ""))
			if err != nil {
				continue
			}
			for _, kv := range kvs {
				select {
				case out <- store.Event{Type: store.EventPut, KV: kv}:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// progressDeadlineExceeded reports whether a revision that was never ready
// has been deploying for longer than config-deployment's progress-deadline.
func (c *Controller) progressDeadlineExceeded(rev *v1.Revision, now time.Time) (bool, time.Duration) {
	d := c.snapshot().Deployment().ProgressDeadline
	ct := rev.Metadata.CreationTimestamp
	return ct != nil && now.Sub(ct.Time) > d, d
}
