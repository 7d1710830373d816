package config

import (
	"fmt"
	"math"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// NameAutoscaler is Knative's config-autoscaler.
const NameAutoscaler = "autoscaler"

// Autoscaler classes and metrics.
const (
	ClassKPA          = "kpa.autoscaling.knative.dev"
	MetricConcurrency = "concurrency"
	MetricRPS         = "rps"
)

// Autoscaler is config-autoscaler with Knative's keys and defaults.
type Autoscaler struct {
	EnableScaleToZero                  bool
	ContainerConcurrencyTargetFraction float64 // container-concurrency-target-percentage / 100
	ContainerConcurrencyTargetDefault  float64
	RPSTargetDefault                   float64
	TargetBurstCapacity                float64 // -1: activator always in path; 0: only at zero
	ActivatorCapacity                  float64
	StableWindow                       time.Duration
	PanicWindowPercentage              float64
	PanicThresholdPercentage           float64
	MaxScaleUpRate                     float64
	MaxScaleDownRate                   float64
	ScaleToZeroGracePeriod             time.Duration
	ScaleToZeroPodRetentionPeriod      time.Duration
	ScaleDownDelay                     time.Duration
	PodAutoscalerClass                 string
	InitialScale                       int64
	AllowZeroInitialScale              bool
	MinScale                           int64
	MaxScale                           int64
	MaxScaleLimit                      int64
}

var autoscalerKeys = []string{
	"enable-scale-to-zero", "container-concurrency-target-percentage", "container-concurrency-target-default",
	"requests-per-second-target-default", "target-burst-capacity", "activator-capacity", "stable-window",
	"panic-window-percentage", "panic-threshold-percentage", "max-scale-up-rate", "max-scale-down-rate",
	"scale-to-zero-grace-period", "scale-to-zero-pod-retention-period", "scale-down-delay",
	"pod-autoscaler-class", "initial-scale", "allow-zero-initial-scale", "min-scale", "max-scale", "max-scale-limit",
}

func init() {
	register(NameAutoscaler, func(d map[string]string) (any, error) { return ParseAutoscaler(d) })
}

// ParseAutoscaler validates config-autoscaler data.
func ParseAutoscaler(d map[string]string) (*Autoscaler, error) {
	if err := checkKeys(d, autoscalerKeys...); err != nil {
		return nil, err
	}
	a := &Autoscaler{}
	var pct float64
	var initial, minS, maxS, limit int64
	errs := []error{
		parseBool(d, "enable-scale-to-zero", true, &a.EnableScaleToZero),
		parseFloat(d, "container-concurrency-target-percentage", 70, 1, 100, &pct),
		parseFloat(d, "container-concurrency-target-default", 100, 0.01, math.MaxFloat64, &a.ContainerConcurrencyTargetDefault),
		parseFloat(d, "requests-per-second-target-default", 200, 0.01, math.MaxFloat64, &a.RPSTargetDefault),
		parseFloat(d, "target-burst-capacity", 211, -1, math.MaxFloat64, &a.TargetBurstCapacity),
		parseFloat(d, "activator-capacity", 100, 1, math.MaxFloat64, &a.ActivatorCapacity),
		parseDuration(d, "stable-window", 60*time.Second, 6*time.Second, time.Hour, &a.StableWindow),
		parseFloat(d, "panic-window-percentage", 10, 1, 100, &a.PanicWindowPercentage),
		parseFloat(d, "panic-threshold-percentage", 200, 110, 1000, &a.PanicThresholdPercentage),
		parseFloat(d, "max-scale-up-rate", 1000, 1.0000001, math.MaxFloat64, &a.MaxScaleUpRate),
		parseFloat(d, "max-scale-down-rate", 2, 1.0000001, math.MaxFloat64, &a.MaxScaleDownRate),
		parseDuration(d, "scale-to-zero-grace-period", 30*time.Second, time.Second, time.Hour, &a.ScaleToZeroGracePeriod),
		parseDuration(d, "scale-to-zero-pod-retention-period", 0, 0, time.Hour, &a.ScaleToZeroPodRetentionPeriod),
		parseDuration(d, "scale-down-delay", 0, 0, time.Hour, &a.ScaleDownDelay),
		parseString(d, "pod-autoscaler-class", ClassKPA, []string{ClassKPA}, &a.PodAutoscalerClass),
		parseInt(d, "initial-scale", 1, 0, math.MaxInt32, &initial),
		parseBool(d, "allow-zero-initial-scale", false, &a.AllowZeroInitialScale),
		parseInt(d, "min-scale", 0, 0, math.MaxInt32, &minS),
		parseInt(d, "max-scale", 0, 0, math.MaxInt32, &maxS),
		parseInt(d, "max-scale-limit", 0, 0, math.MaxInt32, &limit),
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	a.ContainerConcurrencyTargetFraction = pct / 100
	a.InitialScale, a.MinScale, a.MaxScale, a.MaxScaleLimit = initial, minS, maxS, limit
	if a.InitialScale == 0 && !a.AllowZeroInitialScale {
		return nil, fmt.Errorf("initial-scale: 0 requires allow-zero-initial-scale: true: %w", errdefs.ErrInvalidArgument)
	}
	if a.MaxScale > 0 && a.MinScale > a.MaxScale {
		return nil, fmt.Errorf("min-scale: %d is greater than max-scale %d: %w", a.MinScale, a.MaxScale, errdefs.ErrInvalidArgument)
	}
	if a.MaxScaleLimit > 0 && a.MaxScale > a.MaxScaleLimit {
		return nil, fmt.Errorf("max-scale: %d is greater than max-scale-limit %d: %w", a.MaxScale, a.MaxScaleLimit, errdefs.ErrInvalidArgument)
	}
	return a, nil
}
