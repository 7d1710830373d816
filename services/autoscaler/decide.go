package autoscaler

import (
	"math"
	"slices"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Input is what the leader observed about one revision at Now.
type Input struct {
	Now time.Time
	// Stable and Panic are the metric (concurrency or rps, per Spec.Metric)
	// averaged over the stable and panic windows, summed over instances and
	// activators.
	Stable, Panic float64
	// HaveData is false while there is nothing to decide on (Knative's
	// ErrNoData): no stat arrived yet and the leader has not watched the
	// revision for a whole stable window.
	HaveData bool
	// ReadyPods counts the revision's ready instances.
	ReadyPods int
	// Current is the desired scale in scale/ now, or -1 when there is none.
	Current int
}

// State is what the decision carries from one tick to the next for one
// revision. The zero value is not useful; start from NewState.
type State struct {
	// PanicTime is when the panic window last exceeded the threshold; zero
	// when not panicking. MaxPanicPods is the most the panic asked for.
	PanicTime    time.Time
	MaxPanicPods int
	// delay holds (time, desired) pairs of the scale-down-delay window as a
	// decreasing deque, so its front is the window's maximum.
	delay []delayed
	// ActiveSince is when the revision last became active (left zero, or
	// was first seen by this leader): Knative scales to zero only after a
	// revision has been active for a stable window.
	ActiveSince time.Time
	// InactiveSince is when the decision first wanted zero and put the
	// activator in the path; scale to zero follows a grace period later.
	InactiveSince time.Time
	// Initialized: the revision reached its initial scale once, so the
	// initial scale no longer holds it up.
	Initialized bool
	// ActivatingSince is when the revision last wanted instances while it
	// had none ready (Knative's PodAutoscaler Active=Unknown); zero while
	// it has ready instances or wants none.
	ActivatingSince time.Time
}

type delayed struct {
	at time.Time
	n  int
}

// NewState starts the state of a revision first seen at now with ready
// instances. hadScale says a previous leader already wrote its scale, so
// the initial scale was applied before. Like Knative's autoscaler after a
// restart, it starts panicking above one instance, so the lost metric
// history does not cause a scale-down.
func NewState(now time.Time, ready int, hadScale bool) State {
	st := State{ActiveSince: now, Initialized: hadScale}
	if ready > 1 {
		st.PanicTime, st.MaxPanicPods = now, ready
	}
	return st
}

// Decision is what the leader writes to scale/.
type Decision struct {
	Desired             int
	ExcessBurstCapacity float64
	ActivatorInPath     bool
	Panic               bool
}

// Decide is Knative's KPA for one revision: the decider (stable and panic
// windows, rate limits, activation scale, scale-down delay, excess burst
// capacity) followed by the PodAutoscaler's bounds, initial scale and
// scale-to-zero rules. It is pure: the only time it knows is in.Now.
func Decide(spec Spec, in Input, st State) (Decision, State) {
	now := in.Now
	st.delay = slices.Clone(st.delay)
	if !st.Initialized && in.ReadyPods >= spec.InitialScale {
		st.Initialized = true
	}

	want := -1 // unknown
	var ebc float64
	if in.HaveData {
		want, ebc, st = decide(spec, in, st)
	} else {
		ebc = burst(spec, in.ReadyPods, 0)
	}
	// demand is what the metrics ask for (-1: nothing to go on), before
	// the initial scale and the bounds.
	demand := want
	if !st.Initialized {
		want = max(want, spec.InitialScale)
	}
	if want < 0 {
		// Nothing to go on: keep what is there.
		want = in.Current
		if want < 0 {
			want = spec.InitialScale
		}
	}
	if want < spec.MinScale {
		want = spec.MinScale
	}
	if spec.MaxScale > 0 && want > spec.MaxScale {
		want = spec.MaxScale
	}

	switch {
	case activationTimedOut(spec, in, &st, want, demand):
		// Knative's activation timeout: instances that never got ready
		// within the progress deadline, and no request waiting for them,
		// so stop trying (the controller marks the revision
		// ProgressDeadlineExceeded); the next request wakes it again.
		want = 0
		st.Initialized = true
		st.ActivatingSince = time.Time{}
		if st.InactiveSince.IsZero() {
			st.InactiveSince = now
		}
	case want > 0:
		st.InactiveSince = time.Time{}
		if in.Current == 0 {
			st.ActiveSince = now
		}
	default:
		want, st = toZero(spec, in, st)
	}

	d := Decision{Desired: want, ExcessBurstCapacity: ebc, Panic: !st.PanicTime.IsZero()}
	// Knative's serverless service is in proxy mode at zero, while the
	// scale-to-zero grace period runs, when the burst capacity is short,
	// and always with target-burst-capacity -1. With no ready instance
	// only the activator can take requests anyway.
	d.ActivatorInPath = want == 0 || !st.InactiveSince.IsZero() || in.ReadyPods == 0 ||
		spec.TargetBurstCapacity == -1 || ebc < 0
	return d, st
}

// activationTimedOut tracks st.ActivatingSince for a decision of want (or
// the current scale) and reports whether the revision has wanted instances
// without any ready one
// for spec.ProgressDeadline while the metrics ask for none (demand <= 0).
// Like Knative, only where scaling to zero is allowed at all: enabled and
// no min-scale.
func activationTimedOut(spec Spec, in Input, st *State, want, demand int) bool {
	if in.ReadyPods > 0 || (want <= 0 && in.Current <= 0) {
		st.ActivatingSince = time.Time{}
		return false
	}
	if st.ActivatingSince.IsZero() {
		st.ActivatingSince = in.Now
	}
	return spec.ProgressDeadline > 0 && spec.EnableScaleToZero && spec.MinScale == 0 && demand <= 0 &&
		in.Now.Sub(st.ActivatingSince) >= spec.ProgressDeadline
}

// toZero applies Knative's scale-to-zero sequence to a decision of zero:
// only when enabled; only after the revision was active for a stable window;
// first the activator goes into the path, and only a grace period later
// (and the pod retention period) does the scale reach zero.
func toZero(spec Spec, in Input, st State) (int, State) {
	now := in.Now
	switch {
	case !spec.EnableScaleToZero:
		return 1, st
	case in.Current <= 0:
		// Already at zero, or a new revision with initial scale 0.
		if st.InactiveSince.IsZero() {
			st.InactiveSince = now
		}
		return 0, st
	case st.InactiveSince.IsZero():
		if now.Sub(st.ActiveSince) < spec.StableWindow {
			return 1, st
		}
		st.InactiveSince = now
		return 1, st
	case now.Sub(st.InactiveSince) >= max(spec.ScaleToZeroGracePeriod, spec.PodRetention):
		return 0, st
	default:
		return 1, st
	}
}

// decide is Knative's autoscaler.Scale.
func decide(spec Spec, in Input, st State) (int, float64, State) {
	now := in.Now
	ready := math.Max(1, float64(in.ReadyPods))
	maxUp := math.Ceil(spec.MaxScaleUpRate * ready)
	maxDown := 0.
	if spec.Reachable {
		maxDown = math.Floor(ready / spec.MaxScaleDownRate)
	}
	dspc := math.Ceil(in.Stable / spec.TargetValue)
	dppc := math.Ceil(in.Panic / spec.TargetValue)
	stableN := int(math.Min(math.Max(dspc, maxDown), maxUp))
	panicN := int(math.Min(math.Max(dppc, maxDown), maxUp))
	if spec.ActivationScale > 1 {
		if dspc > 0 && spec.ActivationScale > stableN {
			stableN = spec.ActivationScale
		}
		if dppc > 0 && spec.ActivationScale > panicN {
			panicN = spec.ActivationScale
		}
	}

	over := dppc/ready >= spec.PanicThreshold
	switch {
	case over:
		// Enter panic, or extend it while still over the threshold.
		st.PanicTime = now
	case !st.PanicTime.IsZero() && st.PanicTime.Add(spec.StableWindow).Before(now):
		// The surge has made its way into the stable window.
		st.PanicTime, st.MaxPanicPods = time.Time{}, 0
	}

	want := stableN
	if !st.PanicTime.IsZero() {
		// Provision for the larger of the two, and never scale down while
		// panicking.
		want = max(want, panicN)
		st.MaxPanicPods = max(st.MaxPanicPods, want)
		want = st.MaxPanicPods
	}

	if spec.ScaleDownDelay > 0 {
		// Keep the largest decision of the last ScaleDownDelay.
		for len(st.delay) > 0 && st.delay[len(st.delay)-1].n <= want {
			st.delay = st.delay[:len(st.delay)-1]
		}
		st.delay = append(st.delay, delayed{at: now, n: want})
		for len(st.delay) > 1 && !st.delay[0].at.After(now.Add(-spec.ScaleDownDelay)) {
			st.delay = st.delay[1:]
		}
		want = st.delay[0].n
	} else {
		st.delay = nil
	}
	return want, burst(spec, in.ReadyPods, in.Panic), st
}

// burst is the excess burst capacity: what the ready instances can take
// beyond the requests in flight (panic window) and the target burst
// capacity. Negative means the activator must stay in the path.
func burst(spec Spec, ready int, panicValue float64) float64 {
	switch {
	case spec.TargetBurstCapacity == 0:
		return 0
	case spec.TargetBurstCapacity > 0:
		return math.Floor(float64(ready)*spec.TotalValue - spec.TargetBurstCapacity - panicValue)
	default:
		return -1
	}
}

// Wake is the decision on a poke: requests wait in the activator for a
// revision at zero. It scales to max(1, activation scale) within the bounds
// at once, without waiting for metrics (Knative pokes the decider, which
// then sees the activator's stat). A revision above zero is left as is.
func Wake(spec Spec, in Input, st State) (Decision, State, bool) {
	if in.Current > 0 {
		return Decision{}, st, false
	}
	n := max(1, spec.ActivationScale, spec.MinScale)
	if spec.MaxScale > 0 && n > spec.MaxScale {
		n = spec.MaxScale
	}
	st.InactiveSince = time.Time{}
	st.ActiveSince = in.Now
	if in.ReadyPods == 0 {
		// The activation timeout counts from the wake-up.
		st.ActivatingSince = in.Now
	}
	return Decision{Desired: n, ExcessBurstCapacity: burst(spec, in.ReadyPods, in.Panic), ActivatorInPath: true,
		Panic: !st.PanicTime.IsZero()}, st, true
}

// Reachable returns the revisions a Route's status.traffic names or that are
// their Configuration's latest created revision (so a new revision starts
// before traffic moves to it): Knative's reachability.
func Reachable(routes []*v1.Route, cfgs []*v1.Configuration) map[RevisionKey]bool {
	out := map[RevisionKey]bool{}
	for _, rt := range routes {
		for _, tt := range rt.Status.Traffic {
			if tt.RevisionName != "" {
				out[RevisionKey{rt.Metadata.Namespace, tt.RevisionName}] = true
			}
		}
	}
	for _, c := range cfgs {
		if n := c.Status.LatestCreatedRevisionName; n != "" {
			out[RevisionKey{c.Metadata.Namespace, n}] = true
		}
	}
	return out
}
