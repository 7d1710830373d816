package v1

import (
	"context"
	"fmt"
	"regexp"
)

// Validate checks a Route and returns every failure with its path.
func (r *Route) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(r.APIVersion, r.Kind, KindRoute)
	errs = errs.Also(validateObjectMeta(&r.Metadata).Also(validateRouteLabels(r.Metadata.Labels).ViaField("labels")).ViaField("metadata"))
	return errs.Also(validateTraffic(r.Spec.Traffic, false).ViaField("spec"))
}

// qualifiedName is Kubernetes' qualified name ([prefix/]name).
var qualifiedName = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// validateTraffic checks a traffic block the way Knative does; paths are
// relative to its parent (spec). In a Service the configuration is implied
// (defaultConfig), so configurationName is disallowed and latestRevision
// alone picks the target; in a Route each target names a revision or a
// configuration.
func validateTraffic(tt []TrafficTarget, defaultConfig bool) *FieldError {
	var errs *FieldError
	var sum int64
	tags := map[string]int{}
	for i, t := range tt {
		errs = errs.Also(validateTrafficTarget(&t, defaultConfig).ViaIndex(i).ViaField("traffic"))
		if t.Percent != nil {
			sum += *t.Percent
		}
		if t.Tag == "" {
			continue
		}
		if fe := validateDNS1035Label(t.Tag, "tag"); fe != nil {
			errs = errs.Also(fe.ViaIndex(i).ViaField("traffic"))
		}
		if j, dup := tags[t.Tag]; dup {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("Multiple definitions for %q", t.Tag),
				fmt.Sprintf("traffic[%d].tag", i), fmt.Sprintf("traffic[%d].tag", j)))
		} else {
			tags[t.Tag] = i
		}
	}
	if sum != 100 {
		errs = errs.Also(ErrGeneric(fmt.Sprintf("Traffic targets sum to %d, want 100", sum), "traffic"))
	}
	return errs
}

// validateTrafficTarget checks one spec target; paths are relative to it.
func validateTrafficTarget(t *TrafficTarget, defaultConfig bool) *FieldError {
	var errs *FieldError
	if t.LatestRevision != nil {
		// The senses of "pin a revision" and "follow the latest" must agree.
		if lr, pinned := *t.LatestRevision, t.RevisionName != ""; lr == pinned {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("may not set revisionName %q when latestRevision is %t", t.RevisionName, lr), "latestRevision"))
		}
	}
	switch {
	case defaultConfig && t.ConfigurationName != "":
		errs = errs.Also(ErrDisallowedFields("configurationName"))
	case t.RevisionName != "" && t.ConfigurationName != "":
		errs = errs.Also(ErrMultipleOneOf("revisionName", "configurationName"))
	case t.RevisionName != "":
		if !qualifiedName.MatchString(t.RevisionName) {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("invalid key name %q", t.RevisionName), "revisionName"))
		}
	case t.ConfigurationName != "":
		if !qualifiedName.MatchString(t.ConfigurationName) {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("invalid key name %q", t.ConfigurationName), "configurationName"))
		}
	case defaultConfig:
	default:
		errs = errs.Also(ErrMissingOneOf("revisionName", "configurationName"))
	}
	if p := t.Percent; p != nil && (*p < 0 || *p > 100) {
		errs = errs.Also(ErrOutOfBoundsValue(*p, 0, 100, "percent"))
	}
	if t.URL != "" {
		// url is status only: the controller fills it for tagged targets.
		errs = errs.Also(ErrDisallowedFields("url"))
	}
	return errs
}

// validateRouteLabels checks Route (and Service) labels: the visibility
// label only takes cluster-local, and serving.knative.dev/ keys are the
// platform's (except the service label on a Service-owned Route).
func validateRouteLabels(labels map[string]string) *FieldError {
	var errs *FieldError
	for k, v := range labels {
		switch {
		case k == VisibilityLabelKey:
			if v != VisibilityClusterLocal {
				errs = errs.Also(ErrInvalidValue(v, VisibilityLabelKey))
			}
		case k == ServiceLabelKey:
		case len(k) > len(Group) && k[:len(Group)+1] == Group+"/":
			errs = errs.Also(ErrGeneric(fmt.Sprintf("invalid key name %q", k)))
		}
	}
	return errs
}
