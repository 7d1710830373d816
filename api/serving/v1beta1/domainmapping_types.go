package v1beta1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// DomainMapping maps the domain named by metadata.name to an Addressable
// (a Knative Service or Route) in the same namespace.
type DomainMapping struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta   `json:"metadata"`
	Spec            DomainMappingSpec   `json:"spec"`
	Status          DomainMappingStatus `json:"status,omitempty"`
}

// DomainMappingSpec is what the user asks for.
type DomainMappingSpec struct {
	// Ref is the target. Required; mutable.
	Ref KReference `json:"ref"`
	// TLS names a kubernetes.io/tls secret in the mapping's namespace used
	// to serve the domain over HTTPS. Optional; mutable.
	TLS *SecretTLS `json:"tls,omitempty"`
}

// KReference is Knative's duck KReference: a namespaced object by kind,
// name and apiVersion.
type KReference struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
	// Group is accepted for compatibility with newer Knative clients; when
	// set without apiVersion it stands for the group's preferred version.
	Group string `json:"group,omitempty"`
}

// SecretTLS names the TLS secret of a mapping.
type SecretTLS struct {
	SecretName string `json:"secretName"`
}

// DomainMappingStatus is the observed state.
type DomainMappingStatus struct {
	metav1.Status `json:",inline"`
	// URL is http(s)://<metadata.name>.
	URL string `json:"url,omitempty"`
	// Address is the same URL, as Knative's Addressable.
	Address *metav1.Addressable `json:"address,omitempty"`
}

// DomainMapping condition types, as Knative names them.
const (
	ConditionReady                  = "Ready"
	ConditionDomainClaimed          = "DomainClaimed"
	ConditionReferenceResolved      = "ReferenceResolved"
	ConditionCertificateProvisioned = "CertificateProvisioned"
	ConditionIngressReady           = "IngressReady"
)

// Meta returns the object's metadata.
func (dm *DomainMapping) Meta() *metav1.ObjectMeta { return &dm.Metadata }
