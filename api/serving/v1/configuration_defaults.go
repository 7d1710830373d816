package v1

import "context"

// SetDefaults fills apiVersion/kind and the template's defaults.
func (c *Configuration) SetDefaults(ctx context.Context) {
	setTypeMeta(&c.TypeMeta, KindConfiguration)
	c.Spec.Template.Spec.SetDefaults(ctx)
}
