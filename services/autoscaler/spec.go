package autoscaler

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// RevisionKey names a revision.
type RevisionKey struct{ Namespace, Name string }

func (k RevisionKey) String() string { return k.Namespace + "/" + k.Name }

// TargetMin is the smallest per-instance target (Knative's autoscaling.TargetMin).
const TargetMin = 0.01

// Spec is one revision's autoscaling knobs, resolved from its annotations
// and containerConcurrency against config-autoscaler (Knative's DeciderSpec
// plus the PodAutoscaler's bounds).
type Spec struct {
	// Metric is config.MetricConcurrency or config.MetricRPS.
	Metric string
	// TargetValue is what one instance should carry: TotalValue × target
	// utilization, at least TargetMin.
	TargetValue float64
	// TotalValue is what one instance can carry (containerConcurrency, the
	// target annotation, or the config default); it sizes burst capacity.
	TotalValue float64
	// TargetBurstCapacity: -1 keeps the activator always in the path, 0
	// only at zero.
	TargetBurstCapacity float64
	StableWindow        time.Duration
	PanicWindow         time.Duration
	// PanicThreshold is a ratio (2.0 for 200%).
	PanicThreshold   float64
	MaxScaleUpRate   float64
	MaxScaleDownRate float64
	ScaleDownDelay   time.Duration
	// MinScale is 0 for unreachable revisions (Knative ignores min-scale
	// then); MaxScale 0 means unbounded.
	MinScale, MaxScale int
	InitialScale       int
	ActivationScale    int
	// Reachable: a Route sends traffic to the revision, or it is its
	// Configuration's latest created revision.
	Reachable              bool
	EnableScaleToZero      bool
	ScaleToZeroGracePeriod time.Duration
	// PodRetention keeps the last instance at least this long after the
	// scale-to-zero decision (scale-to-zero-pod-retention-period).
	PodRetention time.Duration
	// ProgressDeadline is config-deployment's progress-deadline: a revision
	// without a ready instance for this long, and without requests asking
	// for one, is scaled to zero (Knative's activation timeout). 0 means
	// never. Not set by SpecFor (it reads config-autoscaler only).
	ProgressDeadline time.Duration
}

// SpecFor resolves rev's spec against cfg. Annotation values were checked at
// the API edge; one that slips through is ignored in favour of the config.
func SpecFor(rev *v1.Revision, cfg *config.Autoscaler, reachable bool) Spec {
	ann := rev.Metadata.Annotations
	s := Spec{
		Metric:                 config.MetricConcurrency,
		TargetBurstCapacity:    cfg.TargetBurstCapacity,
		StableWindow:           cfg.StableWindow,
		PanicThreshold:         cfg.PanicThresholdPercentage / 100,
		MaxScaleUpRate:         cfg.MaxScaleUpRate,
		MaxScaleDownRate:       cfg.MaxScaleDownRate,
		ScaleDownDelay:         cfg.ScaleDownDelay,
		MinScale:               int(cfg.MinScale),
		MaxScale:               int(cfg.MaxScale),
		InitialScale:           int(cfg.InitialScale),
		ActivationScale:        1,
		Reachable:              reachable,
		EnableScaleToZero:      cfg.EnableScaleToZero,
		ScaleToZeroGracePeriod: cfg.ScaleToZeroGracePeriod,
		PodRetention:           cfg.ScaleToZeroPodRetentionPeriod,
	}
	if m := ann[v1.AutoscalingMetricAnnotation]; m == config.MetricRPS {
		s.Metric = config.MetricRPS
	}

	// Knative's ResolveMetricTarget.
	var cc float64
	if p := rev.Spec.ContainerConcurrency; p != nil && *p > 0 {
		cc = float64(*p)
	}
	tu := cfg.ContainerConcurrencyTargetFraction
	if s.Metric == config.MetricRPS {
		s.TotalValue = cfg.RPSTargetDefault
	} else {
		s.TotalValue = cc
		if s.TotalValue == 0 {
			s.TotalValue = cfg.ContainerConcurrencyTargetDefault
		}
	}
	if t, ok := floatAnn(ann, v1.AutoscalingTargetAnnotation, TargetMin, math.MaxFloat64); ok {
		s.TotalValue = t
		if s.Metric == config.MetricConcurrency && cc > 0 {
			// Never aim above what the hard limit lets one instance take.
			s.TotalValue = math.Min(t, cc)
		}
	}
	if u, ok := floatAnn(ann, v1.AutoscalingUtilization, 1, 100); ok {
		tu = u / 100
	}
	s.TargetValue = math.Max(TargetMin, s.TotalValue*tu)

	if f, ok := floatAnn(ann, v1.AutoscalingTargetBurstCapacity, -1, math.MaxFloat64); ok && (f >= 0 || f == -1) {
		s.TargetBurstCapacity = f
	}
	if d, ok := durationAnn(ann, v1.AutoscalingWindow, 6*time.Second, time.Hour); ok {
		s.StableWindow = d
	}
	pwp := cfg.PanicWindowPercentage
	if f, ok := floatAnn(ann, v1.AutoscalingPanicWindowPercentage, 1, 100); ok {
		pwp = f
	}
	// Knative rounds the panic window to whole seconds (its bucket size),
	// and it is at least one bucket.
	s.PanicWindow = max(time.Second, time.Duration(float64(s.StableWindow)*pwp/100).Round(time.Second))
	if f, ok := floatAnn(ann, v1.AutoscalingPanicThreshold, 110, 1000); ok {
		s.PanicThreshold = f / 100
	}
	if d, ok := durationAnn(ann, v1.AutoscalingScaleDownDelay, 0, time.Hour); ok {
		s.ScaleDownDelay = d
	}
	if d, ok := durationAnn(ann, v1.AutoscalingScaleToZeroRetention, 0, time.Hour); ok {
		s.PodRetention = d
	}
	if n, ok := intAnn(ann, v1.AutoscalingMinScaleAnnotation, 0); ok {
		s.MinScale = n
	}
	if n, ok := intAnn(ann, v1.AutoscalingMaxScaleAnnotation, 0); ok {
		s.MaxScale = n
	}
	if lim := int(cfg.MaxScaleLimit); lim > 0 && (s.MaxScale == 0 || s.MaxScale > lim) {
		s.MaxScale = lim
	}
	if !reachable {
		s.MinScale = 0
	}
	if n, ok := intAnn(ann, v1.AutoscalingInitialScale, 0); ok && (n > 0 || cfg.AllowZeroInitialScale) {
		s.InitialScale = n
	}
	if n, ok := intAnn(ann, v1.AutoscalingActivationScale, 1); ok {
		s.ActivationScale = n
	}
	return s
}

func floatAnn(a map[string]string, key string, lo, hi float64) (float64, bool) {
	v, ok := a[key]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return 0, false
	}
	return f, true
}

func intAnn(a map[string]string, key string, lo int) (int, bool) {
	v, ok := a[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || int(n) < lo {
		return 0, false
	}
	return int(n), true
}

func durationAnn(a map[string]string, key string, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := a[key]
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return 0, false
	}
	return d, true
}
