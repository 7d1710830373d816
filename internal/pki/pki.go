package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// TrustDomain is the SPIFFE trust domain of kiln identities.
const TrustDomain = "kiln"

// The roles a certificate can carry. A process presents its role's
// certificate; listeners admit only the roles that may call them.
const (
	RoleAPIServer  = "apiserver"
	RoleController = "controller"
	RoleScheduler  = "scheduler"
	RoleAutoscaler = "autoscaler"
	RoleActivator  = "activator"
	RoleXDS        = "xds"
	RoleGateway    = "gateway" // kilnd gateway and Envoy edges
	RoleAgent      = "agent"
	RoleUser       = "user" // a person or tool using the API; Name is the subject
	RoleEtcd       = "etcd" // an etcd member serving clients (kilnd dev's embedded etcd)
)

// Roles lists every role, for flag validation and help texts.
var Roles = []string{RoleAPIServer, RoleController, RoleScheduler, RoleAutoscaler, RoleActivator, RoleXDS, RoleGateway, RoleAgent, RoleUser, RoleEtcd}

// Identity is who a certificate speaks for.
type Identity struct {
	// Role is one of Roles. Required.
	Role string
	// Name is the node (agent, gateway), the replica, or the user subject.
	// Optional for server roles.
	Name string
}

func (id Identity) String() string {
	if id.Name == "" {
		return id.Role
	}
	return id.Role + "/" + id.Name
}

// URI is the identity's SPIFFE ID: spiffe://kiln/<role>[/<name>].
func (id Identity) URI() *url.URL {
	p := "/" + id.Role
	if id.Name != "" {
		p += "/" + id.Name
	}
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: p}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// Validate checks the role is known and the name a DNS-style name.
func (id Identity) Validate() error {
	if !slices.Contains(Roles, id.Role) {
		return fmt.Errorf("role %q: want one of %s", id.Role, strings.Join(Roles, ", "))
	}
	if id.Name != "" && !nameRE.MatchString(id.Name) {
		return fmt.Errorf("name %q: want lowercase letters, digits, '-' and '.'", id.Name)
	}
	return nil
}

// IdentityOf reads the identity from a certificate's SPIFFE URI SAN.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != TrustDomain {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		id := Identity{Role: parts[0]}
		switch len(parts) {
		case 1:
		case 2:
			id.Name = parts[1]
		default:
			return Identity{}, fmt.Errorf("certificate %q: malformed kiln identity %s", cert.Subject.CommonName, u)
		}
		if err := id.Validate(); err != nil {
			return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
		}
		return id, nil
	}
	return Identity{}, fmt.Errorf("certificate %q carries no kiln identity (spiffe://%s/...)", cert.Subject.CommonName, TrustDomain)
}

// ErrNoPeerCertificate is returned when a connection presented no verified
// client certificate.
var ErrNoPeerCertificate = errors.New("no verified client certificate")

// PeerIdentity is the identity of the verified client certificate of a TLS
// connection (an http.Request's TLS, or gRPC's credentials.TLSInfo.State).
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, ErrNoPeerCertificate
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}

// Allow returns a check admitting only the given roles.
func Allow(roles ...string) func(Identity) error {
	return func(id Identity) error {
		if slices.Contains(roles, id.Role) {
			return nil
		}
		return fmt.Errorf("%s may not call this (allowed: %s)", id, strings.Join(roles, ", "))
	}
}

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
}

// NewCA creates a self-signed CA valid for ttl from now.
func NewCA(commonName string, ttl time.Duration, now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"kiln"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), Key: key}, keyPEM, nil
}

// LoadCA reads a CA certificate and key (PEM).
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA %s: not a CA certificate", certFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load CA %s: key cannot sign", keyFile)
	}
	certPEM, _ := os.ReadFile(certFile)
	return &CA{Cert: cert, CertPEM: certPEM, Key: signer}, nil
}

// Issue creates a certificate for id, valid for ttl from now, usable as
// both a TLS server and a TLS client certificate. hosts are the DNS names
// and IP addresses it serves as (SANs); a pure client needs none.
func (ca *CA) Issue(id Identity, hosts []string, ttl time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter // never outlive the CA
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.String(), Organization: []string{"kiln"}, OrganizationalUnit: []string{id.Role}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// IssueFiles issues a certificate for id and writes dir/<base>.crt and
// dir/<base>.key beside the CA's dir/ca.crt, returning the three paths.
func (ca *CA) IssueFiles(dir, base string, id Identity, hosts []string, ttl time.Duration, now time.Time) (Files, error) {
	certPEM, keyPEM, err := ca.Issue(id, hosts, ttl, now)
	if err != nil {
		return Files{}, err
	}
	f := Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
	for _, w := range []struct {
		path    string
		data    []byte
		private bool
	}{{f.CA, ca.CertPEM, false}, {f.Cert, certPEM, false}, {f.Key, keyPEM, true}} {
		if err := WriteFile(w.path, w.data, w.private); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// Files names the PEM files of one process's TLS identity.
type Files struct {
	CA   string // the kiln CA certificate; required
	Cert string // this process's certificate; required
	Key  string // its private key; required
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

func (f Files) load() (*x509.CertPool, tls.Certificate, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, tls.Certificate{}, fmt.Errorf("TLS needs a CA, a certificate and a key (have ca=%q cert=%q key=%q)", f.CA, f.Cert, f.Key)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("CA %s: no PEM certificate", f.CA)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load certificate %s: %w", f.Cert, err)
	}
	return pool, pair, nil
}

// ServerConfig is the TLS configuration of a listener that demands a client
// certificate from the CA. Role checks happen on top, per request or RPC,
// with PeerIdentity.
func ServerConfig(f Files) (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// ClientConfig is the TLS configuration of a client presenting its
// certificate and trusting only the CA.
func ClientConfig(f Files) (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
	}, nil
}

// WriteFile writes PEM data, creating dir; keys get mode 0600.
func WriteFile(path string, data []byte, private bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if private {
		mode = 0o600
	}
	return os.WriteFile(path, data, mode)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
