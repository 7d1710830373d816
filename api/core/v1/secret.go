package v1

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// API coordinates of Secret (the core group has no group name).
const (
	APIVersion     = "v1"
	KindSecret     = "Secret"
	ResourceSecret = "secrets"

	// SecretTypeTLS is a certificate chain and its key, served to edges.
	SecretTypeTLS = "kubernetes.io/tls"
	// SecretTypeOpaque is arbitrary key/value data for workloads.
	SecretTypeOpaque = "Opaque"
	// TLSCertKey and TLSPrivateKeyKey are the data keys of a TLS secret.
	TLSCertKey       = "tls.crt"
	TLSPrivateKeyKey = "tls.key"
)

// Secret is a Kubernetes Secret. Data values are raw bytes (base64 on the
// wire, as in Kubernetes).
type Secret struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Type            string            `json:"type,omitempty"`
	Data            map[string][]byte `json:"data,omitempty"`
	// StringData is write-only convenience, merged into Data by SetDefaults.
	StringData map[string]string `json:"stringData,omitempty"`
}

// Meta returns the object's metadata.
func (s *Secret) Meta() *metav1.ObjectMeta { return &s.Metadata }

// SetDefaults fills apiVersion/kind, defaults an empty type to Opaque (as
// Kubernetes does: kubectl create secret generic sends none) and folds
// stringData into data.
func (s *Secret) SetDefaults() {
	s.APIVersion, s.Kind = APIVersion, KindSecret
	if s.Type == "" {
		s.Type = SecretTypeOpaque
	}
	for k, v := range s.StringData {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

// Validate checks a secret. A TLS secret needs both PEM blocks, and the
// key must match the certificate (kiln checks the pair up front so a bad
// secret fails at create, not at the edge). An Opaque secret's data keys
// must be valid ConfigMap keys, as in Kubernetes.
func (s *Secret) Validate() *servingv1.FieldError {
	var errs *servingv1.FieldError
	if s.Metadata.Name == "" {
		errs = errs.Also(servingv1.ErrMissingField("metadata.name"))
	}
	switch s.Type {
	case SecretTypeTLS:
	case SecretTypeOpaque:
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs = errs.Also(servingv1.ErrInvalidValue(k, "data["+k+"]", msg))
			}
		}
		return errs
	default:
		errs = errs.Also(servingv1.ErrInvalidValue(s.Type, "type", "kiln stores only "+SecretTypeTLS+" and "+SecretTypeOpaque+" secrets"))
		return errs
	}
	crt, key := s.Data[TLSCertKey], s.Data[TLSPrivateKeyKey]
	if len(crt) == 0 {
		errs = errs.Also(servingv1.ErrMissingField("data[" + TLSCertKey + "]"))
	}
	if len(key) == 0 {
		errs = errs.Also(servingv1.ErrMissingField("data[" + TLSPrivateKeyKey + "]"))
	}
	if errs != nil {
		return errs
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		errs = errs.Also(servingv1.ErrInvalidValue("<redacted>", "data", "tls.crt and tls.key are not a matching PEM certificate and key: "+err.Error()))
	}
	return errs
}

// CertInfo is what a certificate says about itself, for describe/list.
type CertInfo struct {
	DNSNames []string
	NotAfter time.Time
	Subject  string
}

// ParseCert reads the leaf (first) certificate of a PEM chain.
func ParseCert(pemChain []byte) (CertInfo, error) {
	for rest := pemChain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return CertInfo{}, fmt.Errorf("no certificate in PEM data")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return CertInfo{}, err
		}
		return CertInfo{DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter, Subject: leaf.Subject.String()}, nil
	}
}
