package v1beta1

import (
	"context"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// SetDefaults stores the object as v1beta1 (a v1alpha1 document has the
// same shape) and points a ref without a namespace at the mapping's own,
// as Knative does.
func (dm *DomainMapping) SetDefaults(context.Context) {
	dm.APIVersion, dm.Kind = APIVersion, KindDomainMapping
	if dm.Spec.Ref.Namespace == "" {
		dm.Spec.Ref.Namespace = dm.Metadata.Namespace
	}
	if dm.Spec.Ref.APIVersion == "" && (dm.Spec.Ref.Group == "" || dm.Spec.Ref.Group == v1.Group) &&
		(dm.Spec.Ref.Kind == v1.KindService || dm.Spec.Ref.Kind == v1.KindRoute) {
		dm.Spec.Ref.APIVersion = v1.APIVersion
	}
}
