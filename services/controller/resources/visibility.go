package resources

import (
	"strings"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// ClusterLocalSuffix is the domain of cluster-local hosts
// (NAME.NAMESPACE.svc.cluster.local), as Knative names them.
const ClusterLocalSuffix = "svc.cluster.local"

// IsClusterLocal reports whether labels (a Route's, propagated from its
// Service) carry networking.knative.dev/visibility=cluster-local.
func IsClusterLocal(labels map[string]string) bool {
	return strings.EqualFold(labels[v1.VisibilityLabelKey], v1.VisibilityClusterLocal)
}

// ForVisibility returns the domain config a route with these labels gets:
// a cluster-local route's URLs are http://NAME.NAMESPACE.svc.cluster.local
// (tags: TAG-NAME.NAMESPACE.svc.cluster.local), whatever the external
// domain and default-external-scheme say.
func ForVisibility(d DomainConfig, labels map[string]string) DomainConfig {
	if !IsClusterLocal(labels) {
		return d
	}
	d.ClusterLocal = true
	d.Scheme = "http"
	return d
}

// ClusterLocalHost is the cluster-local host of route name (tag "" = the
// route itself) in ns, rendered with the tag template.
func (d DomainConfig) ClusterLocalHost(name, ns, tag string) (string, error) {
	d = d.WithDefaults()
	if tag != "" {
		n, err := render(d.TagTemplate, map[string]string{"Tag": tag, "Name": name})
		if err != nil {
			return "", err
		}
		name = n
	}
	return strings.ToLower(name + "." + ns + "." + ClusterLocalSuffix), nil
}
