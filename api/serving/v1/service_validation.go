package v1

import (
	"context"
	"fmt"
	"strings"
)

// Validate checks a Service and returns every failure with its path, e.g.
// spec.template.spec.containers[0].image or spec.traffic[1].percent.
// Call SetDefaults first: an empty traffic block is only valid because the
// defaults fill it. Bounds come from the configs in ctx
// (config.FromContextOrDefaults).
func (s *Service) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(s.APIVersion, s.Kind, KindService)
	meta := validateObjectMeta(&s.Metadata)
	meta = meta.Also(validateServiceLabels(s.Metadata.Labels).ViaField("labels"))
	meta = meta.Also(validateNoAutoscalingAnnotations(s.Metadata.Annotations).ViaField("annotations"))
	errs = errs.Also(meta.ViaField("metadata"))
	errs = errs.Also(s.Spec.Template.validate(ctx, s.Metadata.Name).ViaField("spec", "template"))
	return errs.Also(validateTraffic(s.Spec.Traffic, true).ViaField("spec"))
}

// validateServiceLabels: only the visibility label may take the platform's
// value space; serving.knative.dev/ keys are reserved.
func validateServiceLabels(labels map[string]string) *FieldError {
	var errs *FieldError
	for k, v := range labels {
		switch {
		case k == VisibilityLabelKey:
			if v != VisibilityClusterLocal {
				errs = errs.Also(ErrInvalidValue(v, VisibilityLabelKey))
			}
		case strings.HasPrefix(k, Group+"/"):
			errs = errs.Also(ErrGeneric(fmt.Sprintf("invalid key name %q", k)))
		}
	}
	return errs
}

// validateNoAutoscalingAnnotations rejects autoscaling annotations on a
// Service or Configuration: they only work on the revision template.
func validateNoAutoscalingAnnotations(ann map[string]string) *FieldError {
	var errs *FieldError
	for k := range ann {
		if strings.HasPrefix(k, "autoscaling.knative.dev/") {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("invalid key name %q, autoscaling annotations must be put under \"spec.template.metadata.annotations\" to work", k)))
		}
	}
	return errs
}
