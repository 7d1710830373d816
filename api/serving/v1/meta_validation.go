package v1

import (
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// The name checks are apimachinery's; each complaint is a FieldError with
// its explanation as details, as Knative's validation reports them.

// invalidEach turns apimachinery's complaints about value into
// "invalid value" errors at path.
func invalidEach(value, path string, complaints []string) *FieldError {
	var errs *FieldError
	for _, c := range complaints {
		errs = errs.Also(ErrInvalidValue(value, path, c))
	}
	return errs
}

// validateDNS1035Label checks a name that must be usable as a DNS label and
// start with a letter (Service, Route, Revision names, traffic tags), at path.
func validateDNS1035Label(value, path string) *FieldError {
	return invalidEach(value, path, validation.IsDNS1035Label(value))
}

// validateDNS1123Label checks a namespace or container name.
func validateDNS1123Label(value, path string) *FieldError {
	return invalidEach(value, path, validation.IsDNS1123Label(value))
}

// validateDNS1123Subdomain checks a name like a service account's.
func validateDNS1123Subdomain(value, path string) *FieldError {
	return invalidEach(value, path, validation.IsDNS1123Subdomain(value))
}

// validateObjectMeta checks a top-level object's metadata; paths are
// relative to metadata. Namespace may be empty: the API server fills it
// from the URL and the CLI from --namespace before validating.
func validateObjectMeta(m *metav1.ObjectMeta) *FieldError {
	var errs *FieldError
	if m.Name == "" {
		errs = errs.Also(ErrMissingField("name"))
	} else {
		errs = errs.Also(validateDNS1035Label(m.Name, "name"))
	}
	if m.Namespace != "" {
		errs = errs.Also(validateDNS1123Label(m.Namespace, "namespace"))
	}
	return errs.Also(validateMapKeys(m.Labels, "labels"), validateMapKeys(m.Annotations, "annotations"))
}

func validateMapKeys(m map[string]string, path string) *FieldError {
	var errs *FieldError
	for k := range m {
		if k == "" {
			errs = errs.Also(ErrInvalidValue(`""`, path, "keys must not be empty"))
		}
	}
	return errs
}

// validateScaleAnnotations checks the autoscaling bounds a revision (or
// template) carries; paths are relative to metadata.
func validateScaleAnnotations(ann map[string]string) *FieldError {
	var errs *FieldError
	parse := func(key string) (int64, bool) {
		v, ok := ann[key]
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			errs = errs.Also(ErrInvalidValue(v, "annotations."+key, "must be an integer >= 0"))
			return 0, false
		}
		return n, true
	}
	lo, okLo := parse(AutoscalingMinScaleAnnotation)
	hi, okHi := parse(AutoscalingMaxScaleAnnotation)
	if okLo && okHi && hi > 0 && lo > hi {
		errs = errs.Also(ErrGeneric("min-scale="+strconv.FormatInt(lo, 10)+" is greater than max-scale="+strconv.FormatInt(hi, 10),
			"annotations."+AutoscalingMinScaleAnnotation, "annotations."+AutoscalingMaxScaleAnnotation))
	}
	if v, ok := ann[AutoscalingTargetAnnotation]; ok {
		if f, ok := parseFiniteFloat(v); !ok || f < 0.01 {
			errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingTargetAnnotation, "must be a number >= 0.01"))
		}
	}
	if v, ok := ann[AutoscalingInitialScale]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 0 {
			errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingInitialScale, "must be an integer >= 0"))
		}
	}
	return errs.Also(validateAutoscalingAnnotations(ann))
}

// validateAutoscalingAnnotations checks the KPA's other knobs with
// Knative's ranges; paths are relative to metadata.
func validateAutoscalingAnnotations(ann map[string]string) *FieldError {
	var errs *FieldError
	number := func(key string, lo, hi float64, want string) {
		if v, ok := ann[key]; ok {
			if f, ok := parseFiniteFloat(v); !ok || f < lo || f > hi {
				errs = errs.Also(ErrInvalidValue(v, "annotations."+key, want))
			}
		}
	}
	duration := func(key string, lo, hi time.Duration) {
		if v, ok := ann[key]; ok {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil || d < lo || d > hi:
				errs = errs.Also(ErrInvalidValue(v, "annotations."+key, fmt.Sprintf("must be a duration between %s and %s", lo, hi)))
			case d.Truncate(time.Second) != d:
				errs = errs.Also(ErrInvalidValue(v, "annotations."+key, "must be specified with at most second precision"))
			}
		}
	}
	if v, ok := ann[AutoscalingClassAnnotation]; ok && v != "kpa.autoscaling.knative.dev" {
		errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingClassAnnotation, "kiln autoscales with kpa.autoscaling.knative.dev only"))
	}
	if v, ok := ann[AutoscalingMetricAnnotation]; ok && v != "concurrency" && v != "rps" {
		errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingMetricAnnotation, `must be "concurrency" or "rps" for the kpa class`))
	}
	number(AutoscalingUtilization, 1, 100, "must be a number between 1 and 100")
	number(AutoscalingPanicWindowPercentage, 1, 100, "must be a number between 1 and 100")
	number(AutoscalingPanicThreshold, 110, 1000, "must be a number between 110 and 1000")
	if v, ok := ann[AutoscalingTargetBurstCapacity]; ok {
		if f, ok := parseFiniteFloat(v); !ok || (f < 0 && f != -1) {
			errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingTargetBurstCapacity, "must be -1 or a number >= 0"))
		}
	}
	if v, ok := ann[AutoscalingActivationScale]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 1 {
			errs = errs.Also(ErrInvalidValue(v, "annotations."+AutoscalingActivationScale, "must be an integer >= 1"))
		}
	}
	duration(AutoscalingWindow, 6*time.Second, time.Hour)
	duration(AutoscalingScaleDownDelay, 0, time.Hour)
	duration(AutoscalingScaleToZeroRetention, 0, time.Hour)
	return errs
}
