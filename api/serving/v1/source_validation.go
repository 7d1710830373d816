package v1

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Secret, configMap and projected volumes and env sources, checked as
// Knative's webhook (k8s_validation.go) and then Kubernetes' pod
// validation would: a Revision Kubernetes would refuse to run is refused
// here, at the API edge.

// maxFileMode is the largest mode a projected file may have (0777).
const maxFileMode = 0o777

// minTokenExpiration is Kubernetes' lower bound on a projected token's
// expirationSeconds (ten minutes).
const minTokenExpiration = 600

// validateObjectName checks a reference to a ConfigMap or Secret: present
// and a DNS-1123 subdomain, as Kubernetes names them.
func validateObjectName(name, field string) *FieldError {
	if name == "" {
		return ErrMissingField(field)
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return ErrInvalidValue(name, field, msgs...)
	}
	return nil
}

func validateMode(m *int32, field string) *FieldError {
	if m != nil && (*m < 0 || *m > maxFileMode) {
		return ErrInvalidValue(fmt.Sprintf("%#o", *m), field, "must be a number between 0 and 0777 (octal), both inclusive")
	}
	return nil
}

// validateKeyToPath is Knative's validateKeyToPath plus Kubernetes' check
// that a path stays inside its volume.
func validateKeyToPath(k KeyToPath) *FieldError {
	var errs *FieldError
	if k.Key == "" {
		errs = errs.Also(ErrMissingField("key"))
	}
	if k.Path == "" {
		errs = errs.Also(ErrMissingField("path"))
	} else {
		errs = errs.Also(validateLocalPath(k.Path, "path"))
	}
	return errs.Also(validateMode(k.Mode, "mode"))
}

// validateLocalPath is Kubernetes' validateLocalDescendingPath: relative,
// without a ".." element.
func validateLocalPath(p, field string) *FieldError {
	if path.IsAbs(p) {
		return ErrInvalidValue(p, field, "must be a relative path")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return ErrInvalidValue(p, field, "must not contain '..'")
		}
	}
	return nil
}

func validateItems(items []KeyToPath) *FieldError {
	var errs *FieldError
	for i, it := range items {
		errs = errs.Also(validateKeyToPath(it).ViaFieldIndex("items", i))
	}
	return errs
}

func validateSecretVolume(s *SecretVolumeSource) *FieldError {
	return validateObjectName(s.SecretName, "secretName").Also(validateItems(s.Items)).Also(validateMode(s.DefaultMode, "defaultMode"))
}

func validateConfigMapVolume(c *ConfigMapVolumeSource) *FieldError {
	return validateObjectName(c.Name, "name").Also(validateItems(c.Items)).Also(validateMode(c.DefaultMode, "defaultMode"))
}

func validateProjectedVolume(p *ProjectedVolumeSource) *FieldError {
	var errs *FieldError
	for i, src := range p.Sources {
		errs = errs.Also(validateProjection(src).ViaIndex(i))
	}
	return errs.ViaField("sources").Also(validateMode(p.DefaultMode, "defaultMode"))
}

// validateProjection is Knative's validateProjectedVolumeSource for the
// sources kiln provides (downwardAPI is not one of them).
func validateProjection(vp VolumeProjection) *FieldError {
	var errs *FieldError
	var set []string
	if s := vp.Secret; s != nil {
		set = append(set, "secret")
		errs = errs.Also(validateObjectName(s.Name, "secret.name"))
		errs = errs.Also(validateItems(s.Items).ViaField("secret"))
	}
	if c := vp.ConfigMap; c != nil {
		set = append(set, "configMap")
		errs = errs.Also(validateObjectName(c.Name, "configMap.name"))
		errs = errs.Also(validateItems(c.Items).ViaField("configMap"))
	}
	if t := vp.ServiceAccountToken; t != nil {
		set = append(set, "serviceAccountToken")
		if t.Path == "" {
			errs = errs.Also(ErrMissingField("serviceAccountToken.path"))
		} else {
			errs = errs.Also(validateLocalPath(t.Path, "serviceAccountToken.path"))
		}
		if e := t.ExpirationSeconds; e != nil && (*e < minTokenExpiration || *e > 1<<32) {
			errs = errs.Also(ErrInvalidValue(*e, "serviceAccountToken.expirationSeconds",
				"may not specify a duration less than 10 minutes or more than 2^32 seconds"))
		}
	}
	switch {
	case len(set) == 0:
		errs = errs.Also(ErrMissingOneOf("secret", "configMap", "serviceAccountToken"))
	case len(set) > 1:
		errs = errs.Also(ErrMultipleOneOf(set...))
	}
	return errs
}

// validateKeyRef is Kubernetes' check of a configMapKeyRef or secretKeyRef.
func validateKeyRef(k *KeySelector) *FieldError {
	errs := validateObjectName(k.Name, "name")
	if k.Key == "" {
		errs = errs.Also(ErrMissingField("key"))
	} else if msgs := validation.IsConfigMapKey(k.Key); len(msgs) > 0 {
		errs = errs.Also(ErrInvalidValue(k.Key, "key", msgs...))
	}
	return errs
}

// validateEnvFrom checks an envFrom entry's reference and prefix.
func validateEnvFrom(e EnvFromSource) *FieldError {
	var errs *FieldError
	if r := e.ConfigMapRef; r != nil {
		errs = errs.Also(validateObjectName(r.Name, "configMapRef.name"))
	}
	if r := e.SecretRef; r != nil {
		errs = errs.Also(validateObjectName(r.Name, "secretRef.name"))
	}
	if e.Prefix != "" && !envName.MatchString(e.Prefix) {
		errs = errs.Also(ErrInvalidValue(e.Prefix, "prefix", envNameMessage))
	}
	return errs
}
