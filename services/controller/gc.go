package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// snapshot is the cluster config of the moment (defaults without a source).
func (r *reconciler) snapshot() *config.Snapshot {
	if r.opts.Config == nil {
		return config.DefaultSnapshot()
	}
	return r.opts.Config.Current()
}

// collectRevisionGarbage labels the revisions cfg controls with
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
func (r *reconciler) collectRevisionGarbage(ctx context.Context, ns string, cfg *v1.Configuration, latestReady, latestCreated string) error {
	routed := map[string]bool{}
	for _, rt := range r.routes.List(ns) {
		for _, t := range rt.Status.Traffic {
			routed[t.RevisionName] = true
		}
		for _, t := range rt.Spec.Traffic {
			routed[t.RevisionName] = true
		}
	}
	now := r.opts.Now()
	var mine []*v1.Revision
	for _, rev := range r.revisions.List(ns) {
		if !controlledBy(&rev.Metadata, cfg.Metadata.UID) {
			continue
		}
		state := v1.RoutingStateReserve
		if routed[rev.Metadata.Name] {
			state = v1.RoutingStateActive
		}
		if rev.Metadata.Labels[v1.RoutingStateLabelKey] != state {
			if rev.Metadata.Labels == nil {
				rev.Metadata.Labels = map[string]string{}
			}
			if rev.Metadata.Annotations == nil {
				rev.Metadata.Annotations = map[string]string{}
			}
			rev.Metadata.Labels[v1.RoutingStateLabelKey] = state
			rev.Metadata.Annotations[v1.RoutingStateModifiedAnnotation] = now.UTC().Format(time.RFC3339Nano)
			var err error
			if rev, err = r.revisions.Update(ctx, rev); err != nil {
				return fmt.Errorf("label revision routing state: %w", err)
			}
		}
		mine = append(mine, rev)
	}
	gc := r.snapshot().GC()
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
	for _, rev := range mine {
		name := rev.Metadata.Name
		if name == latestReady || name == latestCreated || routed[name] ||
			strings.EqualFold(rev.Metadata.Annotations[v1.NoGCAnnotation], "true") ||
			rev.Metadata.Labels[v1.RoutingStateLabelKey] != v1.RoutingStateReserve {
			continue
		}
		nonActive++
		if isStale(gc, rev, now) {
			stale++
		}
		switch {
		case stale > lo:
			r.log.Info("deleting stale revision", "namespace", ns, "revision", name)
		case hi != config.Disabled && nonActive > hi:
			r.log.Info("deleting oldest non-active revision above max-non-active-revisions", "namespace", ns, "revision", name, "max", hi)
		default:
			continue
		}
		if err := ignoreNotFound(r.revisions.Delete(ctx, ns, name)); err != nil {
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
func (r *reconciler) resyncPeriod() time.Duration {
	snap := r.snapshot()
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

// progressDeadlineExceeded reports whether a revision that was never ready
// has been deploying for longer than config-deployment's progress-deadline.
func (r *reconciler) progressDeadlineExceeded(rev *v1.Revision, now time.Time) (bool, time.Duration) {
	d := r.snapshot().Deployment().ProgressDeadline
	ct := rev.Metadata.CreationTimestamp
	return ct != nil && now.Sub(ct.Time) > d, d
}
