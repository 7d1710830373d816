package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/kiln-serving/kiln/internal/pki"
)

// EdgeClientSecret is the name of the secret an edge presents to
// queue-proxies and activators when Options.UpstreamCA is set. It is not
// served over SDS: an Envoy edge declares it in its bootstrap's
// static_resources.secrets with the files of its gateway certificate
// (deploy/envoy/bootstrap.yaml), so the xds server never holds an edge's
// private key; kilnd gateway uses its --tls-cert-file in its place.
const EdgeClientSecret = "kiln-edge-client"

// Callers may subscribe to ADS, and so receive SDS secrets: edges only.
var Callers = pki.Allow(pki.RoleGateway)

// upstreamSANs are the SPIFFE IDs an edge accepts from a revision's
// endpoints: queue-proxies (the agent's certificate) and activators.
func upstreamSANs() []*tlsv3.SubjectAltNameMatcher {
	uri := func(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
		return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
	}
	var out []*tlsv3.SubjectAltNameMatcher
	for _, role := range []string{pki.RoleAgent, pki.RoleActivator} {
		id := pki.Identity{Role: role}.URI().String()
		out = append(out,
			uri(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}),
			uri(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: id + "/"}}))
	}
	return out
}

// upstreamTLS is the transport socket of a revision cluster under mutual
// TLS: trust the kiln CA (inline: a CA certificate is public), accept only
// agent and activator identities, and present EdgeClientSecret.
func upstreamTLS(caPEM []byte) *corev3.TransportSocket {
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		// No sds_config: Envoy reads a static secret of this name.
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: EdgeClientSecret}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
			MatchTypedSubjectAltNames: upstreamSANs(),
		}},
	}}
	a, _ := anypb.New(ctx)
	return &corev3.TransportSocket{Name: transportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// withUpstreamTLS puts the mutual-TLS transport socket on c when opts ask.
func withUpstreamTLS(c *clusterv3.Cluster, opts Options) *clusterv3.Cluster {
	if len(opts.UpstreamCA) > 0 {
		c.TransportSocket = upstreamTLS(opts.UpstreamCA)
	}
	return c
}
