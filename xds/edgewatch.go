package xds

import (
	"context"
	"encoding/json"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/store"
)

// The prefixes the edge listeners need besides routes and instances.
// Secrets carry private keys: xds is their only reader besides the
// apiserver, and it never logs their data.
var (
	domainMappingsPrefix = store.RegistryListPrefix(v1beta1.Group, v1beta1.ResourceDomainMapping, "")
	secretsPrefix        = store.SecretsPrefix
)

func decodeDomainMapping(b []byte) (any, error) {
	var dm v1beta1.DomainMapping
	err := json.Unmarshal(b, &dm)
	return dm, err
}

// secretEntry is all the server keeps of a secret.
type secretEntry struct {
	name string
	tls  TLSSecret
}

func decodeSecret(b []byte) (any, error) {
	var sec corev1.Secret
	if err := json.Unmarshal(b, &sec); err != nil {
		return nil, err
	}
	return secretEntry{
		name: SecretName(sec.Metadata.Namespace, sec.Metadata.Name),
		tls:  TLSSecret{Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]},
	}, nil
}

// runConfig follows config/ and rebuilds on every change, so
// config-network http-protocol applies without a restart.
func (s *Server) runConfig(ctx context.Context) {
	go func() { _ = s.cfg.Run(ctx) }()
	for {
		ch := s.cfg.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			s.poke()
		}
	}
}

// edgeInput adds mappings, secrets and config to in; false until both
// prefixes were listed and the config read once. s.mu must be held.
func (s *Server) edgeInput(in *Input) bool {
	if !s.listed[domainMappingsPrefix] || !s.listed[secretsPrefix] {
		return false
	}
	select {
	case <-s.cfg.Synced():
	default:
		return false
	}
	for _, v := range s.state[domainMappingsPrefix] {
		in.DomainMappings = append(in.DomainMappings, v.(v1beta1.DomainMapping))
	}
	in.Secrets = map[string]TLSSecret{}
	for _, v := range s.state[secretsPrefix] {
		e := v.(secretEntry)
		in.Secrets[e.name] = e.tls
	}
	in.HTTPProtocol = s.cfg.Current().Network().HTTPProtocol
	return true
}
