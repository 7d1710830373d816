package autoscaler

import (
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func rev(name string, annotations ...string) *v1.Revision {
	r := &v1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}}}
	for i := 0; i+1 < len(annotations); i += 2 {
		r.Metadata.Annotations[annotations[i]] = annotations[i+1]
	}
	return r
}

func withCC(r *v1.Revision, cc int64) *v1.Revision {
	r.Spec.ContainerConcurrency = &cc
	return r
}

func cfg(t *testing.T, kv ...string) *config.Autoscaler {
	t.Helper()
	d := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	c, err := config.ParseAutoscaler(d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSpecFor(t *testing.T) {
	tests := []struct {
		name      string
		rev       *v1.Revision
		cfg       []string
		reachable bool
		check     func(t *testing.T, s Spec)
	}{
		{name: "Knative defaults", rev: rev("a"), reachable: true, check: func(t *testing.T, s Spec) {
			want := Spec{Metric: "concurrency", TargetValue: 70, TotalValue: 100, TargetBurstCapacity: 211,
				StableWindow: time.Minute, PanicWindow: 6 * time.Second, PanicThreshold: 2, MaxScaleUpRate: 1000,
				MaxScaleDownRate: 2, InitialScale: 1, ActivationScale: 1, Reachable: true, EnableScaleToZero: true,
				ScaleToZeroGracePeriod: 30 * time.Second}
			if s != want {
				t.Errorf("spec = %+v\nwant %+v", s, want)
			}
		}},
		{name: "containerConcurrency is the target", rev: withCC(rev("a"), 10), check: func(t *testing.T, s Spec) {
			if s.TotalValue != 10 || s.TargetValue != 7 {
				t.Errorf("total %g target %g, want 10 and 7", s.TotalValue, s.TargetValue)
			}
		}},
		{name: "target annotation above the hard limit is capped", rev: withCC(rev("a", v1.AutoscalingTargetAnnotation, "50"), 10),
			check: func(t *testing.T, s Spec) {
				if s.TotalValue != 10 {
					t.Errorf("total %g, want 10", s.TotalValue)
				}
			}},
		{name: "target and utilization annotations", rev: rev("a", v1.AutoscalingTargetAnnotation, "50", v1.AutoscalingUtilization, "50"),
			check: func(t *testing.T, s Spec) {
				if s.TotalValue != 50 || s.TargetValue != 25 {
					t.Errorf("total %g target %g, want 50 and 25", s.TotalValue, s.TargetValue)
				}
			}},
		{name: "config target and utilization", rev: rev("a"), cfg: []string{"container-concurrency-target-default", "10", "container-concurrency-target-percentage", "80"},
			check: func(t *testing.T, s Spec) {
				if s.TotalValue != 10 || s.TargetValue != 8 {
					t.Errorf("total %g target %g, want 10 and 8", s.TotalValue, s.TargetValue)
				}
			}},
		{name: "rps", rev: withCC(rev("a", v1.AutoscalingMetricAnnotation, "rps"), 10), check: func(t *testing.T, s Spec) {
			if s.Metric != "rps" || s.TotalValue != 200 || s.TargetValue != 140 {
				t.Errorf("%s total %g target %g, want rps 200 140", s.Metric, s.TotalValue, s.TargetValue)
			}
		}},
		{name: "tiny target floors at 0.01", rev: rev("a", v1.AutoscalingTargetAnnotation, "0.01"), check: func(t *testing.T, s Spec) {
			if s.TargetValue != TargetMin {
				t.Errorf("target %g", s.TargetValue)
			}
		}},
		{name: "windows", rev: rev("a", v1.AutoscalingWindow, "20s", v1.AutoscalingPanicWindowPercentage, "50"), check: func(t *testing.T, s Spec) {
			if s.StableWindow != 20*time.Second || s.PanicWindow != 10*time.Second {
				t.Errorf("windows %s %s", s.StableWindow, s.PanicWindow)
			}
		}},
		{name: "panic window at least a second", rev: rev("a", v1.AutoscalingWindow, "6s", v1.AutoscalingPanicWindowPercentage, "1"), check: func(t *testing.T, s Spec) {
			if s.PanicWindow != time.Second {
				t.Errorf("panic window %s", s.PanicWindow)
			}
		}},
		{name: "bounds, reachable", reachable: true, rev: rev("a", v1.AutoscalingMinScaleAnnotation, "2", v1.AutoscalingMaxScaleAnnotation, "5"),
			check: func(t *testing.T, s Spec) {
				if s.MinScale != 2 || s.MaxScale != 5 {
					t.Errorf("bounds %d %d", s.MinScale, s.MaxScale)
				}
			}},
		{name: "min-scale ignored when unreachable", rev: rev("a", v1.AutoscalingMinScaleAnnotation, "2"), check: func(t *testing.T, s Spec) {
			if s.MinScale != 0 {
				t.Errorf("min %d", s.MinScale)
			}
		}},
		{name: "max-scale-limit caps unbounded", rev: rev("a"), cfg: []string{"max-scale-limit", "7"}, check: func(t *testing.T, s Spec) {
			if s.MaxScale != 7 {
				t.Errorf("max %d", s.MaxScale)
			}
		}},
		{name: "initial 0 needs the cluster opt-in", rev: rev("a", v1.AutoscalingInitialScale, "0"), check: func(t *testing.T, s Spec) {
			if s.InitialScale != 1 {
				t.Errorf("initial %d", s.InitialScale)
			}
		}},
		{name: "initial 0 allowed", rev: rev("a", v1.AutoscalingInitialScale, "0"), cfg: []string{"allow-zero-initial-scale", "true"},
			check: func(t *testing.T, s Spec) {
				if s.InitialScale != 0 {
					t.Errorf("initial %d", s.InitialScale)
				}
			}},
		{name: "activation, burst capacity, delays", rev: rev("a", v1.AutoscalingActivationScale, "3", v1.AutoscalingTargetBurstCapacity, "-1",
			v1.AutoscalingScaleDownDelay, "15s", v1.AutoscalingScaleToZeroRetention, "1m", v1.AutoscalingPanicThreshold, "150"),
			check: func(t *testing.T, s Spec) {
				if s.ActivationScale != 3 || s.TargetBurstCapacity != -1 || s.ScaleDownDelay != 15*time.Second ||
					s.PodRetention != time.Minute || s.PanicThreshold != 1.5 {
					t.Errorf("spec %+v", s)
				}
			}},
		{name: "bad annotations fall back to config", rev: rev("a", v1.AutoscalingTargetAnnotation, "x", v1.AutoscalingWindow, "2s",
			v1.AutoscalingMinScaleAnnotation, "-1"), reachable: true, check: func(t *testing.T, s Spec) {
			if s.TotalValue != 100 || s.StableWindow != time.Minute || s.MinScale != 0 {
				t.Errorf("spec %+v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, SpecFor(tc.rev, cfg(t, tc.cfg...), tc.reachable))
		})
	}
}

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// defaults is the Knative default spec of a routed revision.
func defaults(t *testing.T, mods ...func(*Spec)) Spec {
	s := SpecFor(rev("a"), cfg(t), true)
	for _, m := range mods {
		m(&s)
	}
	return s
}

// step is one decision at t0+at with the given observation.
type step struct {
	at             time.Duration
	stable, panic  float64
	noData         bool
	ready, current int
	// want
	desired int
	aip     bool
	panicky bool
	ebc     *float64
}

func f(v float64) *float64 { return &v }

// pd sets the progress deadline (config-deployment's, set by specFor).
func pd(d time.Duration) func(*Spec) { return func(s *Spec) { s.ProgressDeadline = d } }

// run decides each step in order from NewState(t0, startReady, hadScale)
// and checks every decision.
func run(t *testing.T, spec Spec, startReady int, hadScale bool, steps []step) {
	t.Helper()
	st := NewState(t0, startReady, hadScale)
	for i, s := range steps {
		in := Input{Now: t0.Add(s.at), Stable: s.stable, Panic: s.panic, HaveData: !s.noData, ReadyPods: s.ready, Current: s.current}
		var d Decision
		d, st = Decide(spec, in, st)
		if d.Desired != s.desired || d.ActivatorInPath != s.aip || d.Panic != s.panicky || (s.ebc != nil && d.ExcessBurstCapacity != *s.ebc) {
			t.Fatalf("step %d (t0+%s): got %+v, want desired=%d activatorInPath=%v panic=%v ebc=%v",
				i, s.at, d, s.desired, s.aip, s.panicky, s.ebc)
		}
	}
}

func TestDecide(t *testing.T) {
	tbc0 := func(s *Spec) { s.TargetBurstCapacity = 0 }
	tests := []struct {
		name       string
		spec       Spec
		startReady int // ready instances when the leader first sees it
		hadScale   bool
		steps      []step
	}{
		{name: "stable: ceil(210/70) = 3; EBC = 2*100-211-210", spec: defaults(t), hadScale: true, steps: []step{
			{stable: 210, panic: 210, ready: 2, current: 2, desired: 3, aip: true, ebc: f(-221)},
		}},
		{name: "plenty of burst capacity takes the activator out", spec: defaults(t), hadScale: true, steps: []step{
			// EBC = floor(3*100 - 211 - 50) = 39
			{stable: 50, panic: 50, ready: 3, current: 3, desired: 1, ebc: f(39)},
			// EBC = 300 - 211 - 100 = -11
			{at: 2 * time.Second, stable: 50, panic: 100, ready: 3, current: 1, desired: 1, aip: true, ebc: f(-11)},
		}},
		{name: "panic entry, no scale down while panicking, exit after a stable window", spec: defaults(t), hadScale: true, steps: []step{
			// dppc = ceil(350/70) = 5 >= 2 * 1 ready: panic; want max(1, 5).
			{stable: 35, panic: 350, ready: 1, current: 1, desired: 5, aip: true, panicky: true},
			// Load gone from the panic window: still panicking, keep 5.
			{at: 2 * time.Second, stable: 35, panic: 35, ready: 5, current: 5, desired: 5, panicky: true},
			// Over again at t0+10: the panic extends from there.
			{at: 10 * time.Second, stable: 35, panic: 1400, ready: 5, current: 5, desired: 20, aip: true, panicky: true},
			{at: 69 * time.Second, stable: 35, panic: 35, ready: 20, current: 20, desired: 20, panicky: true},
			{at: 70 * time.Second, stable: 35, panic: 35, ready: 20, current: 20, desired: 20, panicky: true},
			// A stable window after the last time over: back to stable,
			// where the scale-down rate allows 20/2.
			{at: 70*time.Second + time.Millisecond, stable: 35, panic: 35, ready: 20, current: 20, desired: 10},
		}},
		{name: "stable value larger than panic while panicking", spec: defaults(t), hadScale: true, steps: []step{
			{stable: 700, panic: 140, ready: 1, current: 1, desired: 10, aip: true, panicky: true},
		}},
		{name: "scale-up rate", spec: defaults(t, func(s *Spec) { s.MaxScaleUpRate = 2 }), hadScale: true, steps: []step{
			// want 100, at most ceil(2 * 2) = 4.
			{stable: 7000, panic: 7000, ready: 2, current: 2, desired: 4, aip: true, panicky: true},
		}},
		{name: "scale-up rate with no ready pod counts one", spec: defaults(t, func(s *Spec) { s.MaxScaleUpRate = 3 }), hadScale: true, steps: []step{
			{stable: 7000, panic: 7000, ready: 0, current: 1, desired: 3, aip: true, panicky: true},
		}},
		{name: "scale-down rate", spec: defaults(t), hadScale: true, steps: []step{
			// want 1, not below floor(10/2) = 5.
			{stable: 70, panic: 70, ready: 10, current: 10, desired: 5},
			{at: 2 * time.Second, stable: 70, panic: 70, ready: 5, current: 5, desired: 2},
		}},
		{name: "unreachable revisions have no scale-down rate", spec: defaults(t, func(s *Spec) { s.Reachable = false }), hadScale: true, steps: []step{
			{stable: 70, panic: 70, ready: 10, current: 10, desired: 1},
		}},
		{name: "bounds", spec: defaults(t, func(s *Spec) { s.MinScale, s.MaxScale = 3, 4 }), hadScale: true, steps: []step{
			{stable: 70, panic: 70, ready: 3, current: 3, desired: 3},
			{at: 2 * time.Second, stable: 700, panic: 280, ready: 3, current: 3, desired: 4, aip: true},
		}},
		{name: "max 0 is unbounded", spec: defaults(t), hadScale: true, steps: []step{
			{stable: 7000, panic: 7000, ready: 100, current: 100, desired: 100},
		}},
		{name: "scale-down delay keeps the largest decision of the window", spec: defaults(t, func(s *Spec) { s.ScaleDownDelay = 10 * time.Second }),
			hadScale: true, steps: []step{
				{stable: 700, panic: 700, ready: 10, current: 10, desired: 10},
				{at: 2 * time.Second, stable: 70, panic: 70, ready: 10, current: 10, desired: 10},
				{at: 8 * time.Second, stable: 70, panic: 70, ready: 10, current: 10, desired: 10},
				// The decision of t0 left the window (t0+10-10s is out).
				{at: 10 * time.Second, stable: 70, panic: 70, ready: 10, current: 10, desired: 5},
				// Up at once.
				{at: 12 * time.Second, stable: 1400, panic: 700, ready: 10, current: 5, desired: 20},
			}},
		{name: "initial scale holds until reached", spec: defaults(t, func(s *Spec) { s.InitialScale = 3 }), steps: []step{
			{noData: true, current: -1, desired: 3, aip: true},
			{at: 2 * time.Second, stable: 7, panic: 7, ready: 1, current: 3, desired: 3, aip: true},
			// Reached: metrics rule, within the scale-down rate floor(3/2).
			{at: 4 * time.Second, stable: 7, panic: 7, ready: 3, current: 3, desired: 1},
		}},
		{name: "no data keeps the current scale", spec: defaults(t), hadScale: true, steps: []step{
			{noData: true, ready: 4, current: 4, desired: 4},
		}},
		{name: "initial scale 0 starts at zero behind the activator", spec: defaults(t, func(s *Spec) { s.InitialScale = 0 }, tbc0), steps: []step{
			{noData: true, current: -1, desired: 0, aip: true},
			{at: 2 * time.Second, ready: 0, current: 0, desired: 0, aip: true},
		}},
		{name: "activation scale", spec: defaults(t, func(s *Spec) { s.ActivationScale = 3 }), hadScale: true, steps: []step{
			{stable: 10, panic: 10, ready: 1, current: 1, desired: 3, aip: true},
		}},
		{name: "scale to zero: active a stable window, activator first, then the grace period", spec: defaults(t, tbc0), hadScale: true, steps: []step{
			{stable: 0, ready: 1, current: 1, desired: 1},
			{at: 59 * time.Second, ready: 1, current: 1, desired: 1},
			{at: 60 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
			{at: 89 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
			{at: 90 * time.Second, ready: 1, current: 1, desired: 0, aip: true},
			{at: 92 * time.Second, ready: 0, current: 0, desired: 0, aip: true},
		}},
		{name: "traffic during the grace period cancels it", spec: defaults(t, tbc0), hadScale: true, steps: []step{
			{at: 60 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
			{at: 80 * time.Second, stable: 0.1, panic: 0.1, ready: 1, current: 1, desired: 1},
			{at: 82 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
			{at: 111 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
			{at: 112 * time.Second, ready: 1, current: 1, desired: 0, aip: true},
		}},
		{name: "pod retention longer than the grace period", spec: defaults(t, tbc0, func(s *Spec) { s.PodRetention = 45 * time.Second }), hadScale: true,
			steps: []step{
				{at: 60 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
				{at: 100 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
				{at: 105 * time.Second, ready: 1, current: 1, desired: 0, aip: true},
			}},
		{name: "min-scale keeps it up", spec: defaults(t, tbc0, func(s *Spec) { s.MinScale = 1 }), hadScale: true, steps: []step{
			{at: 60 * time.Second, ready: 1, current: 1, desired: 1},
			{at: 200 * time.Second, ready: 1, current: 1, desired: 1},
		}},
		{name: "scale to zero disabled", spec: defaults(t, tbc0, func(s *Spec) { s.EnableScaleToZero = false }), hadScale: true, steps: []step{
			{at: 200 * time.Second, ready: 1, current: 1, desired: 1},
			// Turning it off wakes a revision at zero.
			{at: 202 * time.Second, ready: 0, current: 0, desired: 1, aip: true},
		}},
		{name: "unrouted revision goes to zero the same way, min-scale ignored", spec: defaults(t, tbc0, func(s *Spec) { s.Reachable = false }),
			hadScale: true, steps: []step{
				{ready: 3, current: 3, desired: 1},
				{at: 60*time.Second + time.Millisecond, ready: 1, current: 1, desired: 1, aip: true},
				{at: 90*time.Second + time.Millisecond, ready: 1, current: 1, desired: 0, aip: true},
			}},
		{name: "rps", spec: SpecFor(rev("a", v1.AutoscalingMetricAnnotation, "rps"), cfg(t), true), hadScale: true, steps: []step{
			// ceil(280 / (200 * 0.7)) = 2; EBC = 2*200 - 211 - 280.
			{stable: 280, panic: 280, ready: 2, current: 2, desired: 2, aip: true, ebc: f(-91)},
		}},
		{name: "target burst capacity -1: activator always in the path", spec: defaults(t, func(s *Spec) { s.TargetBurstCapacity = -1 }), hadScale: true,
			steps: []step{{stable: 1, panic: 1, ready: 5, current: 5, desired: 2, aip: true, ebc: f(-1)}}},
		{name: "target burst capacity 0: activator only at zero", spec: defaults(t, tbc0), hadScale: true,
			steps: []step{{stable: 1000, panic: 1000, ready: 15, current: 15, desired: 15, ebc: f(0)}}},
		{name: "target burst capacity 211", spec: defaults(t), hadScale: true, steps: []step{
			{stable: 70, panic: 70, ready: 3, current: 3, desired: 1, ebc: f(19)},
			{at: 2 * time.Second, stable: 70, panic: 70, ready: 2, current: 2, desired: 1, aip: true, ebc: f(-81)},
		}},
		{name: "progress deadline: never ready, no request waiting, goes to zero", spec: defaults(t, tbc0, pd(120*time.Second)), steps: []step{
			{noData: true, current: -1, desired: 1, aip: true},
			{at: 60 * time.Second, current: 1, desired: 1, aip: true},
			{at: 119 * time.Second, current: 1, desired: 1, aip: true},
			{at: 120 * time.Second, current: 1, desired: 0, aip: true},
			// It stays there: the initial scale no longer holds it up.
			{at: 122 * time.Second, current: 0, desired: 0, aip: true},
		}},
		{name: "progress deadline: a waiting request keeps it trying", spec: defaults(t, tbc0, pd(120*time.Second)), steps: []step{
			{noData: true, current: -1, desired: 1, aip: true},
			{at: 120 * time.Second, stable: 1, panic: 1, current: 1, desired: 1, aip: true},
			// The request gave up: zero at once, no grace period.
			{at: 130 * time.Second, current: 1, desired: 0, aip: true},
		}},
		{name: "progress deadline: ready in time, the deadline is over", spec: defaults(t, tbc0, pd(120*time.Second)), steps: []step{
			{noData: true, current: -1, desired: 1, aip: true},
			{at: 30 * time.Second, ready: 1, current: 1, desired: 1},
			{at: 150 * time.Second, ready: 1, current: 1, desired: 1, aip: true},
		}},
		{name: "progress deadline: min-scale keeps it trying", spec: defaults(t, tbc0, pd(120*time.Second), func(s *Spec) { s.MinScale = 1 }), steps: []step{
			{noData: true, current: -1, desired: 1, aip: true},
			{at: 300 * time.Second, current: 1, desired: 1, aip: true},
		}},
		{name: "progress deadline: not with scale to zero disabled", spec: defaults(t, tbc0, pd(120*time.Second), func(s *Spec) { s.EnableScaleToZero = false }), steps: []step{
			{noData: true, current: -1, desired: 1, aip: true},
			{at: 300 * time.Second, current: 1, desired: 1, aip: true},
		}},
		{name: "a new leader starts panicking above one instance", spec: defaults(t), startReady: 6, hadScale: true, steps: []step{
			{stable: 0, ready: 6, current: 6, desired: 6, panicky: true},
			{at: 61 * time.Second, ready: 6, current: 6, desired: 3},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc.spec, tc.startReady, tc.hadScale, tc.steps) })
	}
}

func TestWake(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		current int
		woke    bool
		desired int
	}{
		{name: "at zero to one", spec: defaults(t), current: 0, woke: true, desired: 1},
		{name: "activation scale", spec: defaults(t, func(s *Spec) { s.ActivationScale = 3 }), current: 0, woke: true, desired: 3},
		{name: "activation scale capped by max-scale", spec: defaults(t, func(s *Spec) { s.ActivationScale = 3; s.MaxScale = 2 }), current: 0, woke: true, desired: 2},
		{name: "already up", spec: defaults(t), current: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := NewState(t0, 0, true)
			st.InactiveSince = t0
			d, next, woke := Wake(tc.spec, Input{Now: t0.Add(time.Minute), Current: tc.current}, st)
			if woke != tc.woke || d.Desired != tc.desired {
				t.Fatalf("Wake = %+v %v, want desired %d woke %v", d, woke, tc.desired, tc.woke)
			}
			if woke && (!d.ActivatorInPath || !next.InactiveSince.IsZero() || !next.ActiveSince.Equal(t0.Add(time.Minute))) {
				t.Fatalf("woken state %+v decision %+v", next, d)
			}
		})
	}
	// After a wake, the revision must be active a full stable window again
	// before it goes back to zero.
	spec := defaults(t, func(s *Spec) { s.TargetBurstCapacity = 0 })
	st := NewState(t0, 0, true)
	_, st, _ = Wake(spec, Input{Now: t0, Current: 0}, st)
	d, st := Decide(spec, Input{Now: t0.Add(2 * time.Second), HaveData: true, ReadyPods: 1, Current: 1}, st)
	if d.Desired != 1 || d.ActivatorInPath {
		t.Fatalf("after wake: %+v", d)
	}
	d, _ = Decide(spec, Input{Now: t0.Add(60 * time.Second), HaveData: true, ReadyPods: 1, Current: 1}, st)
	if d.Desired != 1 || !d.ActivatorInPath {
		t.Fatalf("a stable window after wake: %+v", d)
	}
}

func TestReachable(t *testing.T) {
	rt := &v1.Route{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello"}}
	rt.Status.Traffic = []v1.TrafficTarget{{RevisionName: "a"}}
	c := &v1.Configuration{Metadata: metav1.ObjectMeta{Namespace: "other", Name: "hello"}}
	c.Status.LatestCreatedRevisionName = "b"
	got := Reachable([]*v1.Route{rt}, []*v1.Configuration{c})
	if len(got) != 2 || !got[RevisionKey{"default", "a"}] || !got[RevisionKey{"other", "b"}] {
		t.Fatalf("Reachable = %v", got)
	}
}
