package v1

import "context"

// Validate checks a Configuration and returns every failure with its path.
func (c *Configuration) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(c.APIVersion, c.Kind, KindConfiguration)
	meta := validateObjectMeta(&c.Metadata).Also(validateNoAutoscalingAnnotations(c.Metadata.Annotations).ViaField("annotations"))
	errs = errs.Also(meta.ViaField("metadata"))
	return errs.Also(c.Spec.Template.validate(ctx, c.Metadata.Name).ViaField("spec", "template"))
}
