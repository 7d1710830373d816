package xds

import (
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/pki"
)

// With UpstreamCA every revision cluster tells the edge to speak mutual TLS
// to its endpoints: the CA inline, the agent and activator identities as
// the only acceptable servers, and the static client secret; without it
// clusters stay plain. Every resource passes Envoy's validation either way.
func TestUpstreamTLS(t *testing.T) {
	ca, _, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := Input{
		Routes:    []servingv1.Route{route("ns", "r", "http://r.ns.example.com", withTraffic("r-1", 100))},
		Instances: []cluster.Instance{inst("ns", "r-1", "i1", "10.0.0.1:20000", true)},
	}
	plain := Translate(in, Options{})
	for _, c := range plain.Clusters {
		if c.GetTransportSocket() != nil {
			t.Fatalf("cluster %s has a transport socket without UpstreamCA", c.Name)
		}
	}
	res := Translate(in, Options{UpstreamCA: ca.CertPEM})
	validateAll(t, res)
	if len(res.Clusters) == 0 {
		t.Fatal("no clusters")
	}
	for _, c := range res.Clusters {
		up := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
			t.Fatalf("cluster %s: %v", c.Name, err)
		}
		if err := up.ValidateAll(); err != nil {
			t.Fatalf("cluster %s: %v", c.Name, err)
		}
		ctc := up.GetCommonTlsContext()
		if s := ctc.GetTlsCertificateSdsSecretConfigs(); len(s) != 1 || s[0].GetName() != EdgeClientSecret || s[0].GetSdsConfig() != nil {
			t.Errorf("cluster %s: client certificate %v, want the static secret %s", c.Name, s, EdgeClientSecret)
		}
		vc := ctc.GetValidationContext()
		if string(vc.GetTrustedCa().GetInlineBytes()) != string(ca.CertPEM) {
			t.Errorf("cluster %s: trusted CA is not the kiln CA", c.Name)
		}
		var exact []string
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
				t.Errorf("cluster %s: SAN matcher %v, want URI", c.Name, m)
			}
			if e := m.GetMatcher().GetExact(); e != "" {
				exact = append(exact, e)
			}
		}
		if len(exact) != 2 || exact[0] != "spiffe://kiln/agent" || exact[1] != "spiffe://kiln/activator" {
			t.Errorf("cluster %s: accepted identities %v", c.Name, exact)
		}
	}
}
