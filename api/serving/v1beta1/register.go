package v1beta1

import v1 "github.com/kiln-serving/kiln/api/serving/v1"

// Group, versions and kind served under /apis/serving.knative.dev/v1beta1
// (and, for documents written against it, v1alpha1).
const (
	Group           = v1.Group
	Version         = "v1beta1"
	APIVersion      = Group + "/" + Version
	VersionAlpha    = "v1alpha1"
	APIVersionAlpha = Group + "/" + VersionAlpha

	KindDomainMapping     = "DomainMapping"
	ResourceDomainMapping = "domainmappings"
)

// ClusterLocalDomain is the suffix of cluster-local host names; a mapped
// domain may not live under it.
const ClusterLocalDomain = "svc.cluster.local"
