package v1

import (
	"reflect"
	"testing"
)

// Knative's ranges for the KPA annotations (pkg/apis/autoscaling).
func TestValidateScaleAnnotations(t *testing.T) {
	tests := []struct {
		name string
		ann  []string
		want []string // paths at fault, sorted
	}{
		{name: "none"},
		{name: "all valid", ann: []string{AutoscalingClassAnnotation, "kpa.autoscaling.knative.dev", AutoscalingMetricAnnotation, "rps",
			AutoscalingTargetAnnotation, "0.01", AutoscalingUtilization, "100", AutoscalingWindow, "6s",
			AutoscalingPanicWindowPercentage, "1", AutoscalingPanicThreshold, "1000", AutoscalingTargetBurstCapacity, "-1",
			AutoscalingInitialScale, "0", AutoscalingActivationScale, "1", AutoscalingScaleDownDelay, "0s",
			AutoscalingScaleToZeroRetention, "1h", AutoscalingMinScaleAnnotation, "1", AutoscalingMaxScaleAnnotation, "0"}},
		{name: "window upper bound", ann: []string{AutoscalingWindow, "1h"}},
		{name: "burst capacity 0 and 211", ann: []string{AutoscalingTargetBurstCapacity, "211", AutoscalingUtilization, "1"}},
		{name: "hpa class", ann: []string{AutoscalingClassAnnotation, "hpa.autoscaling.knative.dev"}, want: []string{"metadata.annotations." + AutoscalingClassAnnotation}},
		{name: "cpu metric", ann: []string{AutoscalingMetricAnnotation, "cpu"}, want: []string{"metadata.annotations." + AutoscalingMetricAnnotation}},
		{name: "target too small", ann: []string{AutoscalingTargetAnnotation, "0.001"}, want: []string{"metadata.annotations." + AutoscalingTargetAnnotation}},
		{name: "utilization 0", ann: []string{AutoscalingUtilization, "0"}, want: []string{"metadata.annotations." + AutoscalingUtilization}},
		{name: "utilization 101", ann: []string{AutoscalingUtilization, "101"}, want: []string{"metadata.annotations." + AutoscalingUtilization}},
		{name: "window too short", ann: []string{AutoscalingWindow, "5s"}, want: []string{"metadata.annotations." + AutoscalingWindow}},
		{name: "window too long", ann: []string{AutoscalingWindow, "61m"}, want: []string{"metadata.annotations." + AutoscalingWindow}},
		{name: "window not a duration", ann: []string{AutoscalingWindow, "60"}, want: []string{"metadata.annotations." + AutoscalingWindow}},
		{name: "window below second precision", ann: []string{AutoscalingWindow, "6500ms"}, want: []string{"metadata.annotations." + AutoscalingWindow}},
		{name: "panic window percentage", ann: []string{AutoscalingPanicWindowPercentage, "0.5"}, want: []string{"metadata.annotations." + AutoscalingPanicWindowPercentage}},
		{name: "panic threshold", ann: []string{AutoscalingPanicThreshold, "100"}, want: []string{"metadata.annotations." + AutoscalingPanicThreshold}},
		{name: "burst capacity -2", ann: []string{AutoscalingTargetBurstCapacity, "-2"}, want: []string{"metadata.annotations." + AutoscalingTargetBurstCapacity}},
		{name: "initial scale negative", ann: []string{AutoscalingInitialScale, "-1"}, want: []string{"metadata.annotations." + AutoscalingInitialScale}},
		{name: "activation scale 0", ann: []string{AutoscalingActivationScale, "0"}, want: []string{"metadata.annotations." + AutoscalingActivationScale}},
		{name: "scale-down delay negative", ann: []string{AutoscalingScaleDownDelay, "-1s"}, want: []string{"metadata.annotations." + AutoscalingScaleDownDelay}},
		{name: "retention too long", ann: []string{AutoscalingScaleToZeroRetention, "2h"}, want: []string{"metadata.annotations." + AutoscalingScaleToZeroRetention}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Revision{}
			r.Metadata.Annotations = map[string]string{}
			for i := 0; i+1 < len(tc.ann); i += 2 {
				r.Metadata.Annotations[tc.ann[i]] = tc.ann[i+1]
			}
			fe := validateScaleAnnotations(r.Metadata.Annotations).ViaField("metadata")
			if got := fields(fe); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("fields = %q, want %q (error: %v)", got, tc.want, fe)
			}
		})
	}
}
