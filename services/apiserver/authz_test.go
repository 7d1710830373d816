package apiserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/api/auth"
)

func TestAuthorize(t *testing.T) {
	alice := Subject{Name: "alice", Roles: map[string]auth.Role{"dev": auth.RoleEdit, "qa": auth.RoleView, "ops": auth.RoleAdmin}}
	root := Subject{Name: "admin", ClusterRole: auth.RoleClusterAdmin}
	nobody := Subject{Name: "bob"}
	svc := func(verb, ns, name string) Attributes {
		return Attributes{Verb: verb, Group: "serving.knative.dev", Resource: "services", Namespace: ns, Name: name}
	}
	secret := func(verb, ns string) Attributes {
		return Attributes{Verb: verb, Resource: "secrets", Namespace: ns}
	}
	for _, tc := range []struct {
		name string
		s    Subject
		a    Attributes
		want string // "" = allowed
	}{
		{"edit reads its namespace", alice, svc("list", "dev", ""), ""},
		{"edit creates a ConfigMap", alice, Attributes{Verb: "create", Resource: "configmaps", Namespace: "dev"}, ""},
		{"edit patches a ConfigMap", alice, Attributes{Verb: "patch", Resource: "configmaps", Namespace: "dev", Name: "app"}, ""},
		{"edit creates a PersistentVolumeClaim", alice, Attributes{Verb: "create", Resource: "persistentvolumeclaims", Namespace: "dev"}, ""},
		{"view reads a PersistentVolumeClaim", alice, Attributes{Verb: "list", Resource: "persistentvolumeclaims", Namespace: "qa"}, ""},
		{"view may not delete a PersistentVolumeClaim", alice, Attributes{Verb: "delete", Resource: "persistentvolumeclaims", Namespace: "qa", Name: "data"},
			`persistentvolumeclaims "data" is forbidden: User "alice" cannot delete resource "persistentvolumeclaims" in API group "" in the namespace "qa"`},
		{"view reads a ConfigMap", alice, Attributes{Verb: "get", Resource: "configmaps", Namespace: "qa", Name: "app"}, ""},
		{"view may not write a ConfigMap", alice, Attributes{Verb: "update", Resource: "configmaps", Namespace: "qa", Name: "app"},
			`configmaps "app" is forbidden: User "alice" cannot update resource "configmaps" in API group "" in the namespace "qa"`},
		{"admin may not write kiln's configs as ConfigMaps", Subject{Name: "carol", Roles: map[string]auth.Role{"knative-serving": auth.RoleAdmin}},
			Attributes{Verb: "patch", Resource: "configmaps", Namespace: "knative-serving", Name: "config-network"},
			`configmaps "config-network" is forbidden: User "carol" cannot patch resource "configmaps" in API group "" in the namespace "knative-serving"`},
		{"view reads kiln's configs as ConfigMaps", Subject{Name: "carol", Roles: map[string]auth.Role{"knative-serving": auth.RoleView}},
			Attributes{Verb: "get", Resource: "configmaps", Namespace: "knative-serving", Name: "config-network"}, ""},
		{"edit writes other ConfigMaps in knative-serving", Subject{Name: "carol", Roles: map[string]auth.Role{"knative-serving": auth.RoleEdit}},
			Attributes{Verb: "delete", Resource: "configmaps", Namespace: "knative-serving", Name: "app"}, ""},
		{"cluster-admin writes kiln's configs as ConfigMaps", root, Attributes{Verb: "update", Resource: "configmaps", Namespace: "knative-serving", Name: "config-network"}, ""},
		{"edit watches its namespace", alice, svc("watch", "dev", ""), ""},
		{"edit creates in its namespace", alice, svc("create", "dev", ""), ""},
		{"edit deletes in its namespace", alice, svc("delete", "dev", "hello"), ""},
		{"edit deletes a collection in its namespace", alice, svc("deletecollection", "dev", ""), ""},
		{"view may not delete a collection", alice, svc("deletecollection", "qa", ""),
			`services.serving.knative.dev is forbidden: User "alice" cannot deletecollection resource "services" in API group "serving.knative.dev" in the namespace "qa"`},
		{"view reads status", alice, svc("get", "qa", "hello").sub("status"), ""},
		{"edit may not write status", alice, svc("update", "dev", "hello").sub("status"),
			`services.serving.knative.dev "hello" is forbidden: User "alice" cannot update resource "services/status" in API group "serving.knative.dev" in the namespace "dev"`},
		{"cluster-admin writes status", root, svc("patch", "dev", "hello").sub("status"), ""},
		{"edit deletes a revision", alice, Attributes{Verb: "delete", Group: "serving.knative.dev", Resource: "revisions", Namespace: "dev", Name: "hello-00001"}, ""},
		{"edit writes domain mappings", alice, Attributes{Verb: "create", Group: "serving.knative.dev", Resource: "domainmappings", Namespace: "dev"}, ""},
		{"edit may not touch secrets", alice, secret("list", "dev"),
			`secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "dev"`},
		{"view reads", alice, svc("get", "qa", "hello"), ""},
		{"view may not write", alice, svc("update", "qa", "hello"),
			`services.serving.knative.dev "hello" is forbidden: User "alice" cannot update resource "services" in API group "serving.knative.dev" in the namespace "qa"`},
		{"admin manages secrets", alice, secret("create", "ops"), ""},
		{"view reads its namespace object", alice, Attributes{Verb: "get", Resource: "namespaces", Namespace: "qa", Name: "qa"}, ""},
		{"admin may not delete its namespace", alice, Attributes{Verb: "delete", Resource: "namespaces", Namespace: "ops", Name: "ops"},
			`namespaces "ops" is forbidden: User "alice" cannot delete resource "namespaces" in API group "" in the namespace "ops"`},
		{"only cluster-admin creates namespaces", alice, Attributes{Verb: "create", Resource: "namespaces"},
			`namespaces is forbidden: User "alice" cannot create resource "namespaces" in API group "" at the cluster scope`},
		{"cluster-admin deletes namespaces", root, Attributes{Verb: "delete", Resource: "namespaces", Namespace: "ops", Name: "ops"}, ""},
		{"admin edits", alice, svc("patch", "ops", "x"), ""},
		{"no role in another namespace", alice, svc("list", "prod", ""),
			`services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" in the namespace "prod"`},
		{"no role, no write", alice, svc("create", "prod", ""),
			`services.serving.knative.dev is forbidden: User "alice" cannot create resource "services" in API group "serving.knative.dev" in the namespace "prod"`},
		{"list across namespaces needs cluster-admin", alice, svc("list", "", ""),
			`services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" at the cluster scope`},
		{"configs need cluster-admin", alice, Attributes{Verb: "get", Group: "kiln.dev", Resource: "configs", Name: "autoscaler"},
			`configs.kiln.dev "autoscaler" is forbidden: User "alice" cannot get resource "configs" in API group "kiln.dev" at the cluster scope`},
		{"tokens need cluster-admin", alice, Attributes{Verb: "create", Group: "kiln.dev", Resource: "tokens"},
			`tokens.kiln.dev is forbidden: User "alice" cannot create resource "tokens" in API group "kiln.dev" at the cluster scope`},
		{"a subject without roles reads nothing", nobody, svc("get", "dev", "hello"),
			`services.serving.knative.dev "hello" is forbidden: User "bob" cannot get resource "services" in API group "serving.knative.dev" in the namespace "dev"`},
		{"cluster-admin lists everywhere", root, svc("list", "", ""), ""},
		{"cluster-admin reads any secret", root, secret("get", "prod"), ""},
		{"cluster-admin sets configs", root, Attributes{Verb: "patch", Group: "kiln.dev", Resource: "configs", Name: "network"}, ""},
		{"cluster-admin issues tokens", root, Attributes{Verb: "create", Group: "kiln.dev", Resource: "tokens"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Authorize(tc.s, tc.a)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("message\n got %s\nwant %s", err, tc.want)
			}
			st := statusFor(err, "", "")
			var he *httpError
			if st.Code != http.StatusForbidden || st.Reason != "Forbidden" || !errors.As(err, &he) ||
				st.Details == nil || st.Details.Kind != strings.TrimSuffix(tc.a.Resource, "/status") || st.Details.Group != tc.a.Group || st.Details.Name != tc.a.Name {
				t.Fatalf("status %+v details %+v", st, st.Details)
			}
		})
	}
}

func TestRequestAttributes(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        Attributes
	}{
		{"GET", "/apis/serving.knative.dev/v1/namespaces/dev/services", Attributes{"list", "serving.knative.dev", "services", "dev", ""}},
		{"GET", "/apis/serving.knative.dev/v1/namespaces/dev/services?watch=true", Attributes{"watch", "serving.knative.dev", "services", "dev", ""}},
		{"GET", "/apis/serving.knative.dev/v1/namespaces/dev/services/hello", Attributes{"get", "serving.knative.dev", "services", "dev", "hello"}},
		{"GET", "/apis/serving.knative.dev/v1/services", Attributes{"list", "serving.knative.dev", "services", "", ""}},
		{"POST", "/apis/serving.knative.dev/v1beta1/namespaces/dev/domainmappings", Attributes{"create", "serving.knative.dev", "domainmappings", "dev", ""}},
		{"PUT", "/api/v1/namespaces/dev/secrets/cert", Attributes{"update", "", "secrets", "dev", "cert"}},
		{"GET", "/api/v1/secrets", Attributes{"list", "", "secrets", "", ""}},
		{"DELETE", "/api/v1/namespaces/dev", Attributes{"delete", "", "namespaces", "dev", "dev"}},
		{"PATCH", "/apis/serving.knative.dev/v1/namespaces/dev/services/hello/status", Attributes{"patch", "serving.knative.dev", "services/status", "dev", "hello"}},
		{"DELETE", "/apis/serving.knative.dev/v1/namespaces/dev/services?labelSelector=a%3Db", Attributes{"deletecollection", "serving.knative.dev", "services", "dev", ""}},
		{"POST", "/api/v1/namespaces", Attributes{"create", "", "namespaces", "", ""}},
		{"GET", "/api/v1/namespaces/dev/serviceaccounts/default", Attributes{"get", "", "serviceaccounts", "dev", "default"}},
		{"PATCH", "/apis/kiln.dev/v1/configs/autoscaler", Attributes{"patch", "kiln.dev", "configs", "", "autoscaler"}},
		{"DELETE", "/apis/kiln.dev/v1/tokens/abc", Attributes{"delete", "kiln.dev", "tokens", "", "abc"}},
	} {
		t.Run(tc.method+" "+tc.url, func(t *testing.T) {
			if got := requestAttributes(httptest.NewRequest(tc.method, tc.url, nil)); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// sub names a subresource of a's resource, as requestAttributes does.
func (a Attributes) sub(name string) Attributes {
	a.Resource += "/" + name
	return a
}
