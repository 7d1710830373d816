package apiserver

import (
	"reflect"
	"strings"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
)

// A jsonSchema is a JSON Schema object as OpenAPI publishes it.
type jsonSchema = map[string]any

// metaPrefix names apimachinery's meta/v1 types in OpenAPI.
const metaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1."

// kindTypes are the Go types of the kinds whose schemas are reflected;
// a served kind without one gets an object schema that keeps any field.
var kindTypes = map[string]reflect.Type{
	servingGroup + "/v1/Service":             reflect.TypeFor[v1.Service](),
	servingGroup + "/v1/Configuration":       reflect.TypeFor[v1.Configuration](),
	servingGroup + "/v1/Revision":            reflect.TypeFor[v1.Revision](),
	servingGroup + "/v1/Route":               reflect.TypeFor[v1.Route](),
	servingGroup + "/v1beta1/DomainMapping":  reflect.TypeFor[v1beta1.DomainMapping](),
	servingGroup + "/v1alpha1/DomainMapping": reflect.TypeFor[v1beta1.DomainMapping](),
	"v1/Secret":                              reflect.TypeFor[corev1.Secret](),
}

// namedMeta are the meta types published once under their apimachinery
// name and referenced, as Kubernetes does; every other type is inlined,
// as in a CRD's structural schema.
var namedMeta = map[reflect.Type]string{
	reflect.TypeFor[metav1.ObjectMeta]():         metaPrefix + "ObjectMeta",
	reflect.TypeFor[metav1.OwnerReference]():     metaPrefix + "OwnerReference",
	reflect.TypeFor[metav1.ManagedFieldsEntry](): metaPrefix + "ManagedFieldsEntry",
}

// fieldKey names a field for the override tables: "GoType.jsonName".
type fieldKey string

// requiredFields are the fields Knative's CRD schemas (and Kubernetes'
// core schemas) require, by Go type: json tags without omitempty are no
// guide, since kiln's wire types leave some of those empty.
var requiredFields = map[string][]string{
	"RevisionSpec":      {"containers"},
	"EnvVar":            {"name"},
	"KeySelector":       {"key"},
	"HTTPHeader":        {"name", "value"},
	"VolumeMount":       {"mountPath", "name"},
	"Volume":            {"name"},
	"SeccompProfile":    {"type"},
	"Condition":         {"status", "type"},
	"DomainMappingSpec": {"ref"},
	"KReference":        {"kind", "name"},
	"SecretTLS":         {"secretName"},
	"OwnerReference":    {"apiVersion", "kind", "name", "uid"},
	"Sysctl":            {"name", "value"},
	"PVCVolumeSource":   {"claimName"},
}

// opaqueFields are objects Knative's schemas leave open (feature-gated
// pod fields): an object that keeps unknown fields, with no properties.
var opaqueFields = map[fieldKey]bool{
	"RevisionSpec.securityContext": true,
	"RevisionSpec.initContainers":  true, // its items
	"Volume.emptyDir":              true,
	"Volume.persistentVolumeClaim": true,
	"ManagedFieldsEntry.fieldsV1":  true,
}

// quantityFields hold resource quantities ("500m", 1): int-or-string
// values matching Kubernetes' quantity pattern.
var quantityFields = map[fieldKey]bool{
	"ResourceRequirements.limits":   true,
	"ResourceRequirements.requests": true,
}

const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

// fieldDescriptions are what `kubectl explain` prints for a field, in
// kiln's words.
var fieldDescriptions = map[fieldKey]string{
	"Service.spec":                             "The desired state of the Service: the template of its revisions and how traffic is split among them.",
	"Service.status":                           "The observed state of the Service, written by the controller.",
	"Configuration.spec":                       "The desired state of the Configuration: the template every new Revision is stamped from.",
	"Revision.spec":                            "The immutable snapshot of code and configuration this Revision runs.",
	"Route.spec":                               "The desired traffic split across revisions.",
	"DomainMapping.spec":                       "The Addressable the domain (the object's name) maps to, and its TLS secret.",
	"ConfigurationSpec.template":               "The template of the revisions: a change of it stamps a new Revision.",
	"RevisionTemplateSpec.metadata":            "Labels and annotations of the revisions stamped from this template, and an optional revision name ({service}-{suffix}).",
	"RevisionTemplateSpec.spec":                "The revision's pod-like spec: containers, volumes and serving limits.",
	"RevisionSpec.containers":                  "The containers of an instance: exactly one serving container (with the port) and optional sidecars.",
	"RevisionSpec.containerConcurrency":        "The most requests one instance serves at a time; 0 means unlimited.",
	"RevisionSpec.timeoutSeconds":              "The longest time a request may take before it is answered with a timeout.",
	"RevisionSpec.responseStartTimeoutSeconds": "The longest time the first byte of a response may take.",
	"RevisionSpec.idleTimeoutSeconds":          "The longest time a request may go without sending or receiving bytes.",
	"RevisionSpec.serviceAccountName":          "The service account the instances run as.",
	"RevisionSpec.volumes":                     "Volumes the containers can mount.",
	"RouteSpec.traffic":                        "How requests are split among revisions, and the tags that give a revision its own URL.",
	"TrafficTarget.tag":                        "A name that gives this target its own URL.",
	"TrafficTarget.revisionName":               "The revision this share of traffic goes to.",
	"TrafficTarget.configurationName":          "The configuration whose latest ready revision this share of traffic follows.",
	"TrafficTarget.latestRevision":             "Whether this target follows the latest ready revision.",
	"TrafficTarget.percent":                    "The share of traffic, in percent.",
	"Container.image":                          "The container image reference.",
	"Container.ports":                          "The port the serving container listens on (one at most).",
	"Container.env":                            "Environment variables of the container.",
}

// schemaGen reflects Go types into OpenAPI schemas. refPrefix is
// "#/components/schemas/" (v3) or "#/definitions/" (v2); defs collects
// the named meta schemas referenced.
type schemaGen struct {
	refPrefix string
	v3        bool
	defs      map[string]jsonSchema
}

func newSchemaGen(v3 bool) *schemaGen {
	g := &schemaGen{refPrefix: "#/definitions/", v3: v3, defs: map[string]jsonSchema{}}
	if v3 {
		g.refPrefix = "#/components/schemas/"
	}
	return g
}

// ref points at the named schema name; in v3 the reference is wrapped
// in allOf so a description may sit beside it, as Kubernetes publishes it.
func (g *schemaGen) ref(name, desc string) jsonSchema {
	r := jsonSchema{"$ref": g.refPrefix + name}
	if !g.v3 {
		return r
	}
	s := jsonSchema{"allOf": []any{r}}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

// kindSchema is the top-level schema of a kind: apiVersion, kind,
// metadata (a reference to ObjectMeta) and the type's other fields.
func (g *schemaGen) kindSchema(group, version, kind string) jsonSchema {
	t, ok := kindTypes[gvkKey(group, version, kind)]
	var s jsonSchema
	if ok {
		s = g.object(t)
	} else {
		s = jsonSchema{"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": map[string]any{}}
	}
	props := s["properties"].(map[string]any)
	props["apiVersion"] = jsonSchema{"type": "string", "description": "The versioned schema of this representation of an object."}
	props["kind"] = jsonSchema{"type": "string", "description": "The REST resource this object represents."}
	props["metadata"] = g.ref(g.named(reflect.TypeFor[metav1.ObjectMeta]()), "Standard object's metadata.")
	s["x-kubernetes-group-version-kind"] = []any{map[string]any{"group": group, "version": version, "kind": kind}}
	return s
}

func gvkKey(group, version, kind string) string {
	if group == "" {
		return version + "/" + kind
	}
	return group + "/" + version + "/" + kind
}

// named publishes t's schema under its name once and returns the name.
func (g *schemaGen) named(t reflect.Type) string {
	name := namedMeta[t]
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = jsonSchema{} // break cycles
		g.defs[name] = g.object(t)
	}
	return name
}

// object reflects a struct, merging inline (embedded) structs.
func (g *schemaGen) object(t reflect.Type) jsonSchema {
	props := map[string]any{}
	g.fields(t, props)
	s := jsonSchema{"type": "object", "properties": props}
	if req := requiredFields[t.Name()]; len(req) > 0 {
		r := make([]any, len(req))
		for i, f := range req {
			r[i] = f
		}
		s["required"] = r
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(","+opts+",", ",inline,")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft == reflect.TypeFor[metav1.TypeMeta]() {
				continue // apiVersion and kind are added by kindSchema
			}
			g.fields(ft, props)
			continue
		}
		if name == "" {
			name = f.Name
		}
		key := fieldKey(t.Name() + "." + name)
		s := g.field(key, f.Type)
		if d, ok := fieldDescriptions[key]; ok {
			if _, isRef := s["$ref"]; !isRef {
				s["description"] = d
			}
		}
		props[name] = s
	}
}

// field is the schema of one field, after the override tables.
func (g *schemaGen) field(key fieldKey, t reflect.Type) jsonSchema {
	switch {
	case key == "RevisionTemplateSpec.metadata":
		return templateMetadata()
	case opaqueFields[key]:
		if t.Kind() == reflect.Slice {
			return jsonSchema{"type": "array", "items": jsonSchema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
		}
		return jsonSchema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	case quantityFields[key]:
		return jsonSchema{"type": "object", "additionalProperties": g.intOrString(quantityPattern)}
	}
	return g.typeSchema(t)
}

// intOrString is a value that is an integer or a string; Swagger 2.0 has
// no anyOf, so there only the extension says so.
func (g *schemaGen) intOrString(pattern string) jsonSchema {
	s := jsonSchema{"x-kubernetes-int-or-string": true}
	if g.v3 {
		s["anyOf"] = []any{jsonSchema{"type": "integer"}, jsonSchema{"type": "string"}}
	}
	if pattern != "" {
		s["pattern"] = pattern
	}
	return s
}

// templateMetadata is the part of ObjectMeta Knative's schemas list for a
// revision template; other fields are kept but not described.
func templateMetadata() jsonSchema {
	strMap := jsonSchema{"type": "object", "additionalProperties": jsonSchema{"type": "string"}}
	return jsonSchema{"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": map[string]any{
		"annotations": strMap,
		"finalizers":  jsonSchema{"type": "array", "items": jsonSchema{"type": "string"}},
		"labels":      strMap,
		"name":        jsonSchema{"type": "string"},
		"namespace":   jsonSchema{"type": "string"},
	}}
}

func (g *schemaGen) typeSchema(t reflect.Type) jsonSchema {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[metav1.Time]():
		return jsonSchema{"type": "string", "format": "date-time"}
	case reflect.TypeFor[v1.IntOrString]():
		return g.intOrString("")
	}
	if _, ok := namedMeta[t]; ok {
		if g.v3 {
			return jsonSchema{"allOf": []any{jsonSchema{"$ref": g.refPrefix + g.named(t)}}}
		}
		return jsonSchema{"$ref": g.refPrefix + g.named(t)}
	}
	switch t.Kind() {
	case reflect.String:
		return jsonSchema{"type": "string"}
	case reflect.Bool:
		return jsonSchema{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Int8, reflect.Uint16, reflect.Uint8:
		return jsonSchema{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return jsonSchema{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return jsonSchema{"type": "number", "format": "double"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return jsonSchema{"type": "string", "format": "byte"}
		}
		return jsonSchema{"type": "array", "items": g.typeSchema(t.Elem())}
	case reflect.Map:
		return jsonSchema{"type": "object", "additionalProperties": g.typeSchema(t.Elem())}
	case reflect.Struct:
		return g.object(t)
	default: // interfaces: any JSON value
		return jsonSchema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	}
}
