package apiserver

import (
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/schema"
	smdtyped "sigs.k8s.io/structured-merge-diff/v6/typed"
)

// mapFields are the object fields that Kubernetes' and Knative's schemas
// declare as string maps (additionalProperties): their keys are tracked one by
// one and the map itself is owned by whoever created it.
var mapFields = map[string]bool{
	"labels": true, "annotations": true, "limits": true, "requests": true, "nodeSelector": true,
}

const (
	deducedType = "__untyped_deduced_"
	atomicType  = "__untyped_atomic_"
)

// objectTypeConverter types objects as a kube-apiserver types them with a
// CRD's structural schema, without the schema: every object key met in the
// objects of one write is a declared field, the fields of mapFields are maps,
// and every list is atomic (Knative's CRDs declare no list types). Declared
// fields matter for managedFields: kube-apiserver records an applied
// .spec.template.spec.containers as f:spec/f:template/f:spec/f:containers,
// while a schema-less (deduced) type would add "." entries for each map.
// Keys absent from the sampled objects fall back to the deduced type.
type objectTypeConverter struct {
	pt smdtyped.ParseableType
}

var _ managedfields.TypeConverter = objectTypeConverter{}

// newObjectTypeConverter builds the types from the objects of one write
// (the stored object and the new or applied one).
func newObjectTypeConverter(objs ...*unstructured.Unstructured) objectTypeConverter {
	b := &schemaBuilder{s: &schema.Schema{Types: []schema.TypeDef{
		{Name: atomicType, Atom: schema.Atom{
			Scalar: ptrTo(schema.Scalar("untyped")),
			List:   &schema.List{ElementType: smdNamed(atomicType), ElementRelationship: schema.Atomic},
			Map:    &schema.Map{ElementType: smdNamed(atomicType), ElementRelationship: schema.Atomic},
		}},
		{Name: deducedType, Atom: schema.Atom{
			Scalar: ptrTo(schema.Scalar("untyped")),
			List:   &schema.List{ElementType: smdNamed(atomicType), ElementRelationship: schema.Atomic},
			Map:    &schema.Map{ElementType: smdNamed(deducedType), ElementRelationship: schema.Separable},
		}},
	}}}
	var maps []map[string]any
	for _, o := range objs {
		if o != nil {
			maps = append(maps, o.Object)
		}
	}
	root := b.structType(maps)
	return objectTypeConverter{pt: smdtyped.ParseableType{Schema: b.s, TypeRef: smdNamed(root)}}
}

func (c objectTypeConverter) ObjectToTyped(obj runtime.Object, opts ...smdtyped.ValidationOptions) (*smdtyped.TypedValue, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("type %T is not an unstructured object", obj)
	}
	return c.pt.FromUnstructured(u.Object, opts...)
}

func (c objectTypeConverter) TypedToObject(v *smdtyped.TypedValue) (runtime.Object, error) {
	m, ok := v.AsValue().Unstructured().(map[string]any)
	if !ok {
		return nil, fmt.Errorf("typed value is not an object")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

type schemaBuilder struct {
	s *schema.Schema
}

// structType declares a struct type whose fields are the keys of vals.
func (b *schemaBuilder) structType(vals []map[string]any) string {
	name := "object" + strconv.Itoa(len(b.s.Types))
	b.s.Types = append(b.s.Types, schema.TypeDef{Name: name})
	idx := len(b.s.Types) - 1

	var keys []string
	for _, v := range vals {
		for k := range v {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	m := &schema.Map{ElementType: smdNamed(deducedType), ElementRelationship: schema.Separable}
	for _, k := range keys {
		var children []map[string]any
		allMaps := true
		for _, v := range vals {
			child, present := v[k]
			if !present {
				continue
			}
			cm, isMap := child.(map[string]any)
			if !isMap {
				allMaps = false
				break
			}
			children = append(children, cm)
		}
		t := smdNamed(deducedType)
		if allMaps && len(children) > 0 && !mapFields[k] {
			t = smdNamed(b.structType(children))
		}
		m.Fields = append(m.Fields, schema.StructField{Name: k, Type: t})
	}
	b.s.Types[idx].Atom = schema.Atom{Map: m}
	return name
}

func smdNamed(n string) schema.TypeRef { return schema.TypeRef{NamedType: &n} }

func ptrTo[T any](v T) *T { return &v }
