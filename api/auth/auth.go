package auth

import (
	"fmt"
	"time"
)

// APIVersion is the group/version of tokens, beside the cluster configs.
const APIVersion = "kiln.dev/v1"

// Group is the API group of kiln's own objects (configs, tokens): only a
// cluster-admin reaches it.
const Group = "kiln.dev"

// TokensPath is where the API server serves tokens.
const TokensPath = "/apis/" + APIVersion + "/tokens"

// ResourceTokens is the resource name of tokens.
const ResourceTokens = "tokens"

// Role is what a subject may do in a namespace, or cluster-wide for
// RoleClusterAdmin. Each role includes the ones before it.
type Role string

const (
	// RoleView reads (get, list, watch) serving objects and domain mappings.
	RoleView Role = "view"
	// RoleEdit also creates, updates, patches and deletes them.
	RoleEdit Role = "edit"
	// RoleAdmin also manages the namespace's TLS secrets.
	RoleAdmin Role = "admin"
	// RoleClusterAdmin may do everything: every namespace, lists across
	// namespaces, the cluster configs and tokens.
	RoleClusterAdmin Role = "cluster-admin"
)

// Roles lists every role, weakest first.
var Roles = []Role{RoleView, RoleEdit, RoleAdmin, RoleClusterAdmin}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i + 1
		}
	}
	return 0
}

// Includes reports whether holding r grants everything need grants. The
// empty role includes nothing.
func (r Role) Includes(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// ParseRole checks s names a role.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("role %q: want one of view, edit, admin, cluster-admin", s)
}

// Token is the wire shape of a bearer token. The secret itself
// (Status.Token) is returned once, by the create call; the server keeps
// only its SHA-256.
type Token struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   TokenMeta   `json:"metadata"`
	Spec       TokenSpec   `json:"spec"`
	Status     TokenStatus `json:"status,omitempty"`
}

// TokenMeta names a token. Name is its ID (a prefix of the hash, never the
// secret), assigned by the server.
type TokenMeta struct {
	Name              string     `json:"name,omitempty"`
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// TokenSpec is what a token is for.
type TokenSpec struct {
	// Subject is who the token speaks for, the name in authorization
	// decisions. Optional on create: the server names it token-<ID>.
	Subject string `json:"subject,omitempty"`
	// Namespace is where Role is granted. Required unless Role is
	// cluster-admin.
	Namespace string `json:"namespace,omitempty"`
	// Role is granted to Subject in Namespace (cluster-wide for
	// cluster-admin) when the token is created. Required.
	Role Role `json:"role"`
	// ExpirationSeconds bounds the token's life. Optional: 0 never expires.
	ExpirationSeconds int64 `json:"expirationSeconds,omitempty"`
}

// TokenStatus is filled by the server.
type TokenStatus struct {
	// Token is the bearer secret, only in the create response.
	Token string `json:"token,omitempty"`
	// ExpirationTimestamp is when the token stops working; nil: never.
	ExpirationTimestamp *time.Time `json:"expirationTimestamp,omitempty"`
}

// TokenList is the wire shape of GET TokensPath.
type TokenList struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Items      []Token `json:"items"`
}
