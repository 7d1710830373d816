package v1

import "context"

// Validate checks a Service and returns every failure with its path, e.g.
// spec.template.spec.containers[0].image or spec.traffic[1].percent.
// Call SetDefaults first: an empty traffic block is only valid because the
// defaults fill it.
func (s *Service) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(s.APIVersion, s.Kind, KindService)
	errs = errs.Also(validateObjectMeta(&s.Metadata).ViaField("metadata"))
	errs = errs.Also(s.Spec.Template.validate(ctx, s.Metadata.Name).ViaField("spec", "template"))
	return errs.Also(validateTraffic(s.Spec.Traffic, true).ViaField("spec"))
}
