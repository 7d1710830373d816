package apiserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/kiln-serving/kiln/api/auth"
)

// Subject is an authenticated caller and the roles it holds.
type Subject struct {
	// Name is the user name in messages and token records. Required.
	Name string
	// ClusterRole is auth.RoleClusterAdmin or empty.
	ClusterRole auth.Role
	// Roles maps a namespace to the role held there. Optional.
	Roles map[string]auth.Role
}

// Attributes describe one request as the authorizer sees it, in
// Kubernetes' words: verb (get, list, watch, create, update, patch,
// delete, deletecollection), API group ("" for the core group), resource,
// namespace ("" for a cluster-scoped request or a list across namespaces)
// and name.
type Attributes struct {
	Verb, Group, Resource, Namespace, Name string
}

func readVerb(v string) bool { return v == "get" || v == "list" || v == "watch" }

// Authorize decides a request. It is pure: the subject carries every role
// it holds, so one table test covers the whole policy. The policy:
//   - cluster-admin may do everything;
//   - kiln.dev objects (configs, tokens) and anything at the cluster scope
//     (a list across namespaces) need cluster-admin;
//   - secrets (core group) need admin in their namespace;
//   - kiln's config-* ConfigMaps in knative-serving are its cluster
//     configs: read with view there, written only by a cluster-admin; every
//     other ConfigMap is read with view and written with edit;
//   - a namespace (core group) may be read with view in it, and only
//     created, changed or deleted by a cluster-admin;
//   - a status subresource (services/status, ...) may be read with view
//     and written only by a cluster-admin (a controller-like client);
//   - everything else (serving objects, domain mappings) needs view to
//     read and edit to write, in its namespace.
//
// A denial is a 403 with Kubernetes' message.
func Authorize(s Subject, a Attributes) error {
	if s.ClusterRole == auth.RoleClusterAdmin {
		return nil
	}
	if a.Group == auth.Group || a.Namespace == "" {
		return forbidden(s, a)
	}
	need := auth.RoleEdit
	switch {
	case a.Group == "" && a.Resource == "namespaces" && !readVerb(a.Verb):
		return forbidden(s, a)
	case strings.HasSuffix(a.Resource, "/status") && !readVerb(a.Verb):
		// Status is the controller's to write.
		return forbidden(s, a)
	case a.Group == "" && a.Resource == "configmaps" && !readVerb(a.Verb) && configName(a.Namespace, a.Name) != "":
		return forbidden(s, a)
	case a.Group == "" && a.Resource == "secrets":
		need = auth.RoleAdmin
	case readVerb(a.Verb):
		need = auth.RoleView
	}
	if s.Roles[a.Namespace].Includes(need) {
		return nil
	}
	return forbidden(s, a)
}

// forbidden builds Kubernetes' RBAC denial, e.g.
// services.serving.knative.dev "hello" is forbidden: User "alice" cannot get
// resource "services" in API group "serving.knative.dev" in the namespace "prod".
func forbidden(s Subject, a Attributes) error {
	// A subresource is named in the sentence, not in the object's name.
	base, _, _ := strings.Cut(a.Resource, "/")
	what := base
	if a.Group != "" {
		what += "." + a.Group
	}
	if a.Name != "" {
		what += fmt.Sprintf(" %q", a.Name)
	}
	scope := "at the cluster scope"
	if a.Namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", a.Namespace)
	}
	msg := fmt.Sprintf("%s is forbidden: User %q cannot %s resource %q in API group %q %s",
		what, s.Name, a.Verb, a.Resource, a.Group, scope)
	return &httpError{code: http.StatusForbidden, reason: "Forbidden", err: forbiddenError(msg),
		group: a.Group, kind: base, name: a.Name}
}

// forbiddenError keeps the message exactly as Kubernetes words it, with no
// sentinel suffix.
type forbiddenError string

func (e forbiddenError) Error() string { return string(e) }

// requestAttributes reads the attributes from the URL. Every route has the
// Kubernetes shape /apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME] or
// /api/v1[/namespaces/NS]/RESOURCE[/NAME].
func requestAttributes(r *http.Request) Attributes {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var a Attributes
	switch {
	case len(parts) >= 3 && parts[0] == "apis":
		a.Group, parts = parts[1], parts[3:]
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	default:
		parts = nil
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		// /api/v1/namespaces/NS is the namespace object itself: Kubernetes
		// names it resource "namespaces", name and namespace NS.
		if len(parts) == 2 {
			a.Namespace, a.Resource, a.Name = parts[1], parts[0], parts[1]
			parts = nil
		} else {
			a.Namespace, parts = parts[1], parts[2:]
		}
	}
	if len(parts) > 0 {
		a.Resource = parts[0]
	}
	if len(parts) > 1 {
		a.Name = parts[1]
	}
	if len(parts) > 2 {
		// A subresource is authorized as resource/subresource
		// ("services/status"), as Kubernetes' RBAC names it.
		a.Resource += "/" + parts[2]
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.Verb = "list"
		if a.Name != "" {
			a.Verb = "get"
		}
		if isWatch(r) {
			a.Verb = "watch"
		}
	case http.MethodPost:
		a.Verb = "create"
	case http.MethodPut:
		a.Verb = "update"
	case http.MethodPatch:
		a.Verb = "patch"
	case http.MethodDelete:
		a.Verb = "delete"
		if a.Name == "" {
			a.Verb = "deletecollection"
		}
	default:
		a.Verb = strings.ToLower(r.Method)
	}
	return a
}
