package apiserver

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// apiResource describes one served resource the way Kubernetes' discovery,
// OpenAPI, Table output and error messages name it. The serving kinds carry
// the names, short names, categories and printer columns of Knative
// Serving's CRDs, so kubectl and kn see what they see on a Knative cluster.
type apiResource struct {
	Group    string // "" for the core group
	Version  string
	Resource string // plural, as in the URL
	Singular string
	Kind     string
	// Namespaced objects live under /namespaces/NS/.
	Namespaced   bool
	ShortNames   []string
	Categories   []string
	Verbs        []string
	Subresources []string // e.g. "status"
	// Columns are the Table columns after NAME (Knative's
	// additionalPrinterColumns; core kinds: what kubectl prints).
	Columns []printerColumn
}

// printerColumn is one additionalPrinterColumn: a JSONPath into the object.
type printerColumn struct {
	Name        string
	Type        string // string, integer, date, ...
	JSONPath    string
	Description string
	Format      string // e.g. "name" for the NAME column
	Priority    int32  // 0: always shown; 1: with -o wide
	// Value computes the cell where kubectl's column for a built-in kind
	// is no JSONPath (a count of keys, an age). Optional: nil evaluates
	// JSONPath as Kubernetes does for a CRD's column.
	Value func(obj map[string]any) any
}

// GroupVersion is "group/version", or "v1" for the core group.
func (a apiResource) GroupVersion() string {
	if a.Group == "" {
		return a.Version
	}
	return a.Group + "/" + a.Version
}

// GroupResource names the resource as Kubernetes' errors do: its String
// is "resource.group" ("secrets" for the core group), as in
// services.serving.knative.dev "x" not found.
func (a apiResource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: a.Group, Resource: a.Resource}
}

// BasePath is the URL prefix of the resource's group version.
func (a apiResource) BasePath() string {
	if a.Group == "" {
		return "/api/" + a.Version
	}
	return "/apis/" + a.GroupVersion()
}

const servingGroup = "serving.knative.dev"

var (
	crudVerbs     = []string{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"}
	readVerbs     = []string{"get", "list", "watch"}
	knativeCats   = []string{"all", "knative", "serving"}
	readyColumn   = printerColumn{Name: "Ready", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].status"}
	reasonColumn  = printerColumn{Name: "Reason", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].reason"}
	urlColumn     = printerColumn{Name: "URL", Type: "string", JSONPath: ".status.url"}
	latestCreated = printerColumn{Name: "LatestCreated", Type: "string", JSONPath: ".status.latestCreatedRevisionName"}
	latestReady   = printerColumn{Name: "LatestReady", Type: "string", JSONPath: ".status.latestReadyRevisionName"}
)

// apiResources is every resource kiln serves in Kubernetes' form.
var apiResources = []apiResource{
	{Group: servingGroup, Version: "v1", Resource: "services", Singular: "service", Kind: "Service", Namespaced: true,
		ShortNames: []string{"kservice", "ksvc"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{urlColumn, latestCreated, latestReady, readyColumn, reasonColumn}},
	{Group: servingGroup, Version: "v1", Resource: "configurations", Singular: "configuration", Kind: "Configuration", Namespaced: true,
		ShortNames: []string{"config", "cfg"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{latestCreated, latestReady, readyColumn, reasonColumn}},
	{Group: servingGroup, Version: "v1", Resource: "revisions", Singular: "revision", Kind: "Revision", Namespaced: true,
		ShortNames: []string{"rev"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{
			{Name: "Config Name", Type: "string", JSONPath: ".metadata.labels['serving\\.knative\\.dev/configuration']"},
			{Name: "Generation", Type: "string", JSONPath: ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"},
			readyColumn, reasonColumn,
			{Name: "Actual Replicas", Type: "integer", JSONPath: ".status.actualReplicas"},
			{Name: "Desired Replicas", Type: "integer", JSONPath: ".status.desiredReplicas"},
		}},
	{Group: servingGroup, Version: "v1", Resource: "routes", Singular: "route", Kind: "Route", Namespaced: true,
		ShortNames: []string{"rt"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{urlColumn, readyColumn, reasonColumn}},
	{Group: servingGroup, Version: "v1beta1", Resource: "domainmappings", Singular: "domainmapping", Kind: "DomainMapping", Namespaced: true,
		ShortNames: []string{"dm"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{urlColumn, readyColumn, reasonColumn}},
	{Group: servingGroup, Version: "v1alpha1", Resource: "domainmappings", Singular: "domainmapping", Kind: "DomainMapping", Namespaced: true,
		ShortNames: []string{"dm"}, Categories: knativeCats, Verbs: crudVerbs, Subresources: []string{"status"},
		Columns: []printerColumn{urlColumn, readyColumn, reasonColumn}},

	// kiln's own kiln.dev/v1 objects (configs, tokens) are not listed:
	// the kind Config would make kubectl resolve "config" to them rather
	// than to Knative's configurations, and they are not in Kubernetes'
	// object shape. kiln's CLI reaches them by path.
}

// The core/v1 kinds kiln serves, in the order and spelling of a
// kube-apiserver's /api/v1 discovery; verbs are those kiln serves.
var coreAPIResources = []apiResource{
	{Version: "v1", Resource: "configmaps", Singular: "configmap", Kind: "ConfigMap", Namespaced: true,
		ShortNames: []string{"cm"}, Verbs: []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		Columns: []printerColumn{configMapDataColumn, ageColumn}},
	{Version: "v1", Resource: "namespaces", Singular: "namespace", Kind: "Namespace", Namespaced: false,
		ShortNames: []string{"ns"}, Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
		Columns: []printerColumn{{Name: "Status", Type: "string", JSONPath: ".status.phase", Description: "The status of the namespace"}, ageColumn}},
	{Version: "v1", Resource: "persistentvolumeclaims", Singular: "persistentvolumeclaim", Kind: "PersistentVolumeClaim", Namespaced: true,
		ShortNames: []string{"pvc"}, Verbs: []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		Columns: pvcColumns},
	{Version: "v1", Resource: "pods", Singular: "pod", Kind: "Pod", Namespaced: true,
		ShortNames: []string{"po"}, Categories: []string{"all"}, Verbs: readVerbs, Subresources: []string{"log"},
		Columns: podColumns},
	{Version: "v1", Resource: "secrets", Singular: "secret", Kind: "Secret", Namespaced: true,
		Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
		Columns: []printerColumn{{Name: "Type", Type: "string", JSONPath: ".type", Description: corev1.Secret{}.SwaggerDoc()["type"]},
			secretDataColumn, ageColumn}},
	{Version: "v1", Resource: "services", Singular: "service", Kind: "Service", Namespaced: true,
		ShortNames: []string{"svc"}, Categories: []string{"all"}, Verbs: readVerbs,
		Columns: serviceColumns},
	{Version: "v1", Resource: "serviceaccounts", Singular: "serviceaccount", Kind: "ServiceAccount", Namespaced: true,
		ShortNames: []string{"sa"}, Verbs: []string{"get", "list"},
		Columns: []printerColumn{ageColumn}},
}

func init() { apiResources = append(apiResources, coreAPIResources...) }

// The columns of built-in kinds whose cells are no plain JSONPath value.
// Knative's CRDs have no AGE column.
var (
	ageColumn = printerColumn{Name: "Age", Type: "string", JSONPath: ".metadata.creationTimestamp",
		Description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
		Value: func(obj map[string]any) any {
			return dateCell(lookupString(obj, "metadata", "creationTimestamp"))
		}}
	dataColumn = printerColumn{Name: "Data", Type: "string", JSONPath: ".data",
		Value: func(obj map[string]any) any {
			d, _ := obj["data"].(map[string]any)
			b, _ := obj["binaryData"].(map[string]any)
			return int64(len(d) + len(b))
		}}
	configMapDataColumn = withDescription(dataColumn, corev1.ConfigMap{}.SwaggerDoc()["data"])
	secretDataColumn    = withDescription(dataColumn, corev1.Secret{}.SwaggerDoc()["data"])
)

// pvcColumns are kubectl's columns of a PersistentVolumeClaim.
var pvcColumns = []printerColumn{
	{Name: "Status", Type: "string", JSONPath: ".status.phase", Description: "phase represents the current phase of PersistentVolumeClaim."},
	{Name: "Volume", Type: "string", JSONPath: ".spec.volumeName", Description: "volumeName is the binding reference to the PersistentVolume backing this claim.",
		Value: func(obj map[string]any) any { return lookupString(obj, "spec", "volumeName") }},
	{Name: "Capacity", Type: "string", JSONPath: ".status.capacity.storage", Description: "capacity represents the actual resources of the underlying volume."},
	{Name: "Access Modes", Type: "string", JSONPath: ".status.accessModes",
		Description: "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
		Value:       pvcAccessModesCell},
	{Name: "StorageClass", Type: "string", JSONPath: ".spec.storageClassName", Description: "StorageClass of the pvc",
		Value: func(obj map[string]any) any { return lookupString(obj, "spec", "storageClassName") }},
	{Name: "VolumeAttributesClass", Type: "string", JSONPath: ".spec.volumeAttributesClassName", Description: "VolumeAttributesClass of the pvc",
		Value: func(obj map[string]any) any {
			if c := lookupString(obj, "spec", "volumeAttributesClassName"); c != "" {
				return c
			}
			return "<unset>"
		}},
	ageColumn,
	{Name: "VolumeMode", Type: "string", JSONPath: ".spec.volumeMode", Priority: 1,
		Description: "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."},
}

func withDescription(c printerColumn, d string) printerColumn {
	c.Description = d
	return c
}

// findAPIResource returns the descriptor of group/version/resource.
func findAPIResource(group, version, resource string) (apiResource, bool) {
	for _, a := range apiResources {
		if a.Group == group && a.Version == version && a.Resource == resource {
			return a, true
		}
	}
	return apiResource{}, false
}

// resourceFromPath picks the descriptor for a request path under /api/ or
// /apis/ (e.g. /apis/serving.knative.dev/v1/namespaces/default/services/x).
func resourceFromPath(path string) (apiResource, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group, version string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		version, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, version, parts = parts[1], parts[2], parts[3:]
	default:
		return apiResource{}, false
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return apiResource{}, false
	}
	return findAPIResource(group, version, parts[0])
}
