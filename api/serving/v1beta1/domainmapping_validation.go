package v1beta1

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks a DomainMapping and returns every failure with its path
// (metadata.name, spec.ref.namespace, spec.tls.secretName, ...).
func (dm *DomainMapping) Validate(context.Context) *v1.FieldError {
	var errs *v1.FieldError
	switch dm.APIVersion {
	case "", APIVersion, APIVersionAlpha:
	default:
		errs = errs.Also(v1.ErrInvalidValue(dm.APIVersion, "apiVersion", "want "+APIVersion+" or "+APIVersionAlpha))
	}
	if dm.Kind != "" && dm.Kind != KindDomainMapping {
		errs = errs.Also(v1.ErrInvalidValue(dm.Kind, "kind", "want "+KindDomainMapping))
	}
	errs = errs.Also(validateMeta(&dm.Metadata).ViaField("metadata"))
	errs = errs.Also(dm.Spec.Ref.validate(dm.Metadata.Namespace).ViaField("spec", "ref"))
	if dm.Spec.TLS != nil {
		if dm.Spec.TLS.SecretName == "" {
			errs = errs.Also(v1.ErrMissingField("spec.tls.secretName"))
		} else if msg := dnsSubdomain(dm.Spec.TLS.SecretName); msg != "" {
			errs = errs.Also(v1.ErrInvalidValue(dm.Spec.TLS.SecretName, "spec.tls.secretName", msg))
		}
	}
	return errs
}

// validateMeta checks the mapping's name, which is the domain it maps.
//
// Knative requires a fully qualified name with at least two labels; kiln
// also accepts a single label so the documented examples (a DomainMapping
// named "example-domain") apply unchanged. Everything else matches: a
// lower-case DNS-1123 subdomain of at most 253 characters that is not under
// the cluster-local domain.
func validateMeta(m *metav1.ObjectMeta) *v1.FieldError {
	var errs *v1.FieldError
	switch {
	case m.Name == "":
		errs = errs.Also(v1.ErrMissingField("name"))
	default:
		if msg := dnsSubdomain(m.Name); msg != "" {
			errs = errs.Also(v1.ErrGeneric(fmt.Sprintf("invalid name %q: %s", m.Name, msg), "name"))
		}
		if m.Name == ClusterLocalDomain || strings.HasSuffix(m.Name, "."+ClusterLocalDomain) {
			errs = errs.Also(v1.ErrGeneric(fmt.Sprintf("invalid name %q: must not be a subdomain of cluster local domain %q", m.Name, ClusterLocalDomain), "name"))
		}
	}
	if m.Namespace != "" {
		if len(m.Namespace) > 63 || !dns1123Label.MatchString(m.Namespace) {
			errs = errs.Also(v1.ErrInvalidValue(m.Namespace, "namespace",
				"a DNS-1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"))
		}
	}
	for _, mp := range []struct {
		path string
		m    map[string]string
	}{{"labels", m.Labels}, {"annotations", m.Annotations}} {
		if _, ok := mp.m[""]; ok {
			errs = errs.Also(v1.ErrInvalidValue(`""`, mp.path, "keys must not be empty"))
		}
	}
	return errs
}

// validate checks a ref; parentNS is the mapping's namespace. Paths are
// relative to spec.ref.
func (r *KReference) validate(parentNS string) *v1.FieldError {
	var errs *v1.FieldError
	if r.Name == "" {
		errs = errs.Also(v1.ErrMissingField("name"))
	}
	if r.Kind == "" {
		errs = errs.Also(v1.ErrMissingField("kind"))
	}
	if r.APIVersion == "" && r.Group == "" {
		errs = errs.Also(v1.ErrMissingField("apiVersion"))
	}
	// Cross-namespace mappings would let one namespace publish another's
	// service; Knative refuses them the same way.
	if r.Namespace != "" && parentNS != "" && r.Namespace != parentNS {
		errs = errs.Also(v1.ErrGeneric(fmt.Sprintf("mismatched namespaces: parent namespace: %q does not match ref: %q", parentNS, r.Namespace), "namespace"))
	}
	// kiln resolves only the Knative Addressables it serves itself.
	if r.Kind != "" && r.Kind != v1.KindService && r.Kind != v1.KindRoute {
		errs = errs.Also(v1.ErrInvalidValue(r.Kind, "kind", "kiln maps domains to a Knative Service or Route"))
	}
	if r.APIVersion != "" && r.APIVersion != v1.APIVersion && (r.Kind == v1.KindService || r.Kind == v1.KindRoute) {
		errs = errs.Also(v1.ErrInvalidValue(r.APIVersion, "apiVersion", "want "+v1.APIVersion))
	}
	return errs
}

// dnsSubdomain returns why s is not a DNS-1123 subdomain, or "".
func dnsSubdomain(s string) string {
	if len(s) > 253 {
		return "must be no more than 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 || !dns1123Label.MatchString(l) {
			return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
		}
	}
	return ""
}
