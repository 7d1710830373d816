package store

import "strings"

// The etcd key layout. Every key kiln writes is built here.
const (
	Root            = "/kiln/"
	RegistryPrefix  = Root + "registry/"
	ConfigPrefix    = Root + "config/"
	NodesPrefix     = Root + "nodes/"
	ScalePrefix     = Root + "scale/"
	PlacementPrefix = Root + "placements/"
	InstancePrefix  = Root + "instances/"
	ElectionPrefix  = Root + "election/"
	// SecretsPrefix holds TLS secrets (secrets/<namespace>/<name>). Written
	// by the apiserver; read by the apiserver and xds only, since values
	// carry private keys.
	SecretsPrefix = Root + "secrets/"
	// DomainClaimsPrefix holds the cluster-wide claim on a mapped domain
	// (domainclaims/<domain>), written by the controller (Knative's
	// ClusterDomainClaim).
	DomainClaimsPrefix = Root + "domainclaims/"
	// ActivatorsPrefix holds one record per live activator
	// (activators/<identity>), written by that activator on its own lease
	// so a dead one vanishes: the xds server routes to every one, and each
	// takes its share of every instance's containerConcurrency.
	ActivatorsPrefix = Root + "activators/"
	// RevisionsPrefix holds every Revision, in all namespaces: the one
	// spelling of the prefix the roles that follow revisions watch
	// (RegistryListPrefix of serving.knative.dev revisions).
	RevisionsPrefix = RegistryPrefix + "serving.knative.dev/revisions/"
	// AuthPrefix holds API access control, written and read by the
	// apiserver only: auth/tokens/<sha256 of the token, hex> (the token
	// itself is never stored) and auth/bindings/<subject> (the roles a
	// subject holds, per namespace or cluster-wide).
	AuthPrefix     = Root + "auth/"
	TokensPrefix   = AuthPrefix + "tokens/"
	BindingsPrefix = AuthPrefix + "bindings/"
	// NamespacesPrefix holds one record per namespace created through the
	// API (namespaces/<name>: a core/v1 Namespace as JSON), written by the
	// apiserver only. Namespaces without a record are implicit: objects may
	// still be written into them. A record in phase Terminating is a
	// deletion in progress that any apiserver resumes.
	NamespacesPrefix = Root + "namespaces/"
	// ConfigMapsPrefix holds users' core/v1 ConfigMaps
	// (configmaps/<namespace>/<name>: the ConfigMap as JSON, without its
	// resourceVersion, which is the key's mod revision), written by the
	// apiserver only. kiln's own config-* ConfigMaps are views of
	// ConfigPrefix, not records here.
	ConfigMapsPrefix = Root + "configmaps/"
	// ConfigMapSourcesPrefix is the common prefix of ConfigPrefix and
	// ConfigMapsPrefix: one list or watch of it sees every ConfigMap the
	// API serves, in revision order.
	ConfigMapSourcesPrefix = Root + "config"
	// PersistentVolumeClaimsPrefix holds core/v1 PersistentVolumeClaims
	// (persistentvolumeclaims/<namespace>/<name>: the claim as JSON,
	// without its resourceVersion, which is the key's mod revision),
	// written by the apiserver only. The claim's data is the node
	// directory VOLUME-ROOT/<namespace>/<name>, not a record here.
	PersistentVolumeClaimsPrefix = Root + "persistentvolumeclaims/"
	// ServicesPrefix holds the core/v1 Service each Route keeps
	// (services/<namespace>/<name>: the Service as JSON, without its
	// resourceVersion, which is the key's mod revision), written by the
	// controller only and read by the apiserver's Services view.
	ServicesPrefix = Root + "services/"
)

// RegistryKey is registry/<group>/<resource>/<namespace>/<name>.
func RegistryKey(group, resource, namespace, name string) string {
	return RegistryPrefix + group + "/" + resource + "/" + namespace + "/" + name
}

// RegistryListPrefix lists a resource in one namespace, or in all namespaces
// when namespace is empty.
func RegistryListPrefix(group, resource, namespace string) string {
	p := RegistryPrefix + group + "/" + resource + "/"
	if namespace != "" {
		p += namespace + "/"
	}
	return p
}

// ConfigKey is config/<name>.
func ConfigKey(name string) string { return ConfigPrefix + name }

// NodeKey is nodes/<node>.
func NodeKey(node string) string { return NodesPrefix + node }

// ScaleKey is scale/<namespace>/<revision>.
func ScaleKey(namespace, revision string) string { return ScalePrefix + namespace + "/" + revision }

// PlacementKey is placements/<node>/<instance>.
func PlacementKey(node, instance string) string { return PlacementPrefix + node + "/" + instance }

// InstanceKey is instances/<node>/<instance>.
func InstanceKey(node, instance string) string { return InstancePrefix + node + "/" + instance }

// ElectionKey is election/<role>.
func ElectionKey(role string) string { return ElectionPrefix + role }

// SecretKey is secrets/<namespace>/<name>.
func SecretKey(namespace, name string) string { return SecretsPrefix + namespace + "/" + name }

// SecretListPrefix lists secrets in one namespace, or all when namespace is "".
func SecretListPrefix(namespace string) string {
	if namespace == "" {
		return SecretsPrefix
	}
	return SecretsPrefix + namespace + "/"
}

// ConfigMapKey is configmaps/<namespace>/<name>.
func ConfigMapKey(namespace, name string) string { return ConfigMapsPrefix + namespace + "/" + name }

// ConfigMapListPrefix lists ConfigMaps in one namespace, or all when
// namespace is "".
func ConfigMapListPrefix(namespace string) string {
	if namespace == "" {
		return ConfigMapsPrefix
	}
	return ConfigMapsPrefix + namespace + "/"
}

// PersistentVolumeClaimKey is persistentvolumeclaims/<namespace>/<name>.
func PersistentVolumeClaimKey(namespace, name string) string {
	return PersistentVolumeClaimsPrefix + namespace + "/" + name
}

// PersistentVolumeClaimListPrefix lists claims in one namespace, or all
// when namespace is "".
func PersistentVolumeClaimListPrefix(namespace string) string {
	if namespace == "" {
		return PersistentVolumeClaimsPrefix
	}
	return PersistentVolumeClaimsPrefix + namespace + "/"
}

// ServiceKey is services/<namespace>/<name>.
func ServiceKey(namespace, name string) string { return ServicesPrefix + namespace + "/" + name }

// ServiceListPrefix lists Services in one namespace, or all when
// namespace is "".
func ServiceListPrefix(namespace string) string {
	if namespace == "" {
		return ServicesPrefix
	}
	return ServicesPrefix + namespace + "/"
}

// DomainClaimKey is domainclaims/<domain>.
func DomainClaimKey(domain string) string { return DomainClaimsPrefix + domain }

// TokenKey is auth/tokens/<hash>, hash the hex SHA-256 of a bearer token.
func TokenKey(hash string) string { return TokensPrefix + hash }

// BindingKey is auth/bindings/<subject>.
func BindingKey(subject string) string { return BindingsPrefix + subject }

// NamespaceKey is namespaces/<name>.
func NamespaceKey(name string) string { return NamespacesPrefix + name }

// ActivatorKey is activators/<identity>.
func ActivatorKey(identity string) string { return ActivatorsPrefix + identity }

// SplitLast returns the last two path segments of key (e.g. node and
// instance of placements/<node>/<instance>).
func SplitLast(key string) (parent, name string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", key
	}
	rest := key[:i]
	j := strings.LastIndexByte(rest, '/')
	return rest[j+1:], key[i+1:]
}
