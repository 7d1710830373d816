// Package apiserver serves the serving.knative.dev/v1 REST API over the
// registry: get, list, create, update, patch, delete and watch for Services,
// Configurations, Revisions, Routes and (v1beta1, v1alpha1) DomainMappings,
// one handler set for all of them, with defaulting and validation at the
// edge. It follows Kubernetes' conventions with apimachinery's own parsers
// and errors: metav1.Status bodies in Kubernetes' words; label and field
// (metadata.name, metadata.namespace) selectors, limit/continue paging from
// one snapshot and resourceVersion/resourceVersionMatch on lists (410
// Expired once etcd has compacted past them); selectors applied to watch
// events (an object leaving the selection is DELETED), BOOKMARKs,
// timeoutSeconds; dryRun, generateName, DeleteOptions (propagation,
// preconditions), a read-only /status, JSON or YAML bodies (415 otherwise)
// and Knative's creator/lastModifier annotations naming the user.
//
// Every request is authenticated (a client certificate of role user, the
// bootstrap cluster-admin token, or a token issued through kiln.dev/v1
// tokens, of which only the SHA-256 is stored under auth/tokens/) and then
// authorized by Authorize, a pure function of the subject's roles
// (auth/bindings/<subject>: view, edit, admin per namespace, or
// cluster-admin) and the request's verb, group, resource and namespace:
// 401 for an unknown caller, 403 with Kubernetes' RBAC message otherwise.
// It also serves the cluster configs (kiln.dev/v1 configs: get, replace,
// merge-patch, reset) and is the only writer of config/ keys, validating
// every document with api/config before it is stored. Every write is
// defaulted and validated with the configs as stored at that moment.
//
// It describes itself as a kube-apiserver with Knative Serving's CRDs
// does, from the one resource table (apiresources.go): /version (to
// anyone), discovery (/api, /apis, their aggregated apidiscovery.k8s.io/v2
// form, /apis/GROUP[/VERSION]) and OpenAPI (/openapi/v2 as JSON or
// protobuf, /openapi/v3 per group version, schemas reflected from the
// api/ wire types) to every authenticated caller whatever its roles, and
// lists and gets in the meta.k8s.io Table form from the resources'
// printer columns. kiln.dev/v1 is left out of discovery: its Config kind
// would take kubectl's "config" from Knative's configurations.
//
// It owns the spec and metadata of registry objects as users write them.
// It must never write status (the controller owns it; a user's status is
// dropped and the stored one kept), never create or update Revisions (the
// controller stamps them; a user may only delete one, Knative's
// user-initiated `kn revision delete`, the one write to registry revisions
// that is not the controller's), and never talk to etcd except through internal/registry
// (and the store's config/ keys, for the configs, and auth/ keys, for
// tokens and role bindings, which no other role reads or writes).
package apiserver
