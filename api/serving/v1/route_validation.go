package v1

import (
	"context"
	"fmt"
)

// Validate checks a Route and returns every failure with its path.
func (r *Route) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(r.APIVersion, r.Kind, KindRoute)
	errs = errs.Also(validateObjectMeta(&r.Metadata).ViaField("metadata"))
	return errs.Also(validateTraffic(r.Spec.Traffic, false).ViaField("spec"))
}

// validateTraffic checks a traffic block; paths are relative to its parent
// (spec). In a Service the configuration is implied, so configurationName is
// disallowed and latestRevision alone picks the target; in a Route each
// target names a revision or a configuration.
func validateTraffic(tt []TrafficTarget, inService bool) *FieldError {
	var errs *FieldError
	if !inService && len(tt) == 0 {
		return ErrMissingField("traffic")
	}
	var sum int64
	tags := map[string]int{}
	for i, t := range tt {
		var e *FieldError
		latest := t.LatestRevision != nil && *t.LatestRevision
		if inService {
			if t.ConfigurationName != "" {
				e = e.Also(ErrDisallowedFields("configurationName"))
			}
			switch {
			case latest && t.RevisionName != "":
				e = e.Also(ErrGeneric("may not set revisionName when latestRevision is true", "revisionName", "latestRevision"))
			case !latest && t.RevisionName == "":
				e = e.Also(ErrMissingOneOf("revisionName", "latestRevision"))
			}
		} else {
			switch {
			case t.RevisionName != "" && t.ConfigurationName != "":
				e = e.Also(ErrMultipleOneOf("revisionName", "configurationName"))
			case t.RevisionName == "" && t.ConfigurationName == "":
				e = e.Also(ErrMissingOneOf("revisionName", "configurationName"))
			case latest && t.RevisionName != "":
				e = e.Also(ErrGeneric("may not set revisionName when latestRevision is true", "revisionName", "latestRevision"))
			case t.LatestRevision != nil && !latest && t.ConfigurationName != "":
				e = e.Also(ErrGeneric("may not set latestRevision to false with configurationName", "latestRevision"))
			}
		}
		if t.RevisionName != "" {
			e = e.Also(validateDNS1035Label(t.RevisionName, "revisionName"))
		}
		if t.Percent != nil {
			if p := *t.Percent; p < 0 || p > 100 {
				e = e.Also(ErrOutOfBoundsValue(p, 0, 100, "percent"))
			} else {
				sum += p
			}
		}
		if t.Tag != "" {
			e = e.Also(validateDNS1035Label(t.Tag, "tag"))
			if j, dup := tags[t.Tag]; dup {
				e = e.Also(ErrGeneric(fmt.Sprintf("multiple definitions for %q, first at traffic[%d]", t.Tag, j), "tag"))
			} else {
				tags[t.Tag] = i
			}
		}
		if t.URL != "" {
			e = e.Also(ErrDisallowedFields("url"))
		}
		errs = errs.Also(e.ViaFieldIndex("traffic", i))
	}
	if len(tt) > 0 && sum != 100 {
		errs = errs.Also(ErrGeneric(fmt.Sprintf("traffic targets sum to %d, want 100", sum), "traffic"))
	}
	return errs
}
