package envoy

import (
	"os"
	"slices"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	xdsserver "github.com/kiln-serving/kiln/xds"
)

// TestBootstrap parses the shipped file the way Envoy does (YAML → JSON →
// proto, unknown fields rejected) and runs Envoy's proto validation.
func TestBootstrap(t *testing.T) {
	raw, err := os.ReadFile("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("not a Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("invalid: %v", err)
	}

	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9901 {
		t.Errorf("admin address %v, want 127.0.0.1:9901", a)
	}
	dyn := b.GetDynamicResources()
	if dyn.GetLdsConfig().GetAds() == nil || dyn.GetCdsConfig().GetAds() == nil {
		t.Error("LDS and CDS must come over ADS")
	}
	ads := dyn.GetAdsConfig()
	if ads.GetApiType().String() != "GRPC" || ads.GetTransportApiVersion().String() != "V3" ||
		ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "kiln-xds" {
		t.Errorf("ads_config %v", ads)
	}

	if rb := ads.GetGrpcServices()[0].GetEnvoyGrpc().GetRetryPolicy().GetRetryBackOff(); rb.GetMaxInterval().AsDuration() > time.Second {
		t.Errorf("ADS stream retry back-off %v, want at most 1s", rb)
	}

	clusters := b.GetStaticResources().GetClusters()
	if len(clusters) != 1 || clusters[0].GetName() != "kiln-xds" {
		t.Fatalf("static clusters %v, want kiln-xds", clusters)
	}
	xds := clusters[0]
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 18000 {
		t.Errorf("kiln-xds endpoint %v, want 127.0.0.1:18000", sa)
	}
	if od := xds.GetOutlierDetection(); od.GetConsecutiveLocalOriginFailure().GetValue() != 1 || !od.GetSplitExternalLocalOriginErrors() {
		t.Errorf("kiln-xds outlier detection %v, want a replica ejected at its first refused connection", od)
	}
	opts := &httpv3.HttpProtocolOptions{}
	if err := xds.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts); err != nil {
		t.Fatalf("http protocol options: %v", err)
	}
	if err := opts.ValidateAll(); err != nil {
		t.Errorf("http protocol options: %v", err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("kiln-xds must use HTTP/2 (gRPC)")
	}

	// Mutual TLS to xds with the edge's gateway certificate, which is also
	// the static secret the xds server's clusters name for upstreams.
	var client *tlsv3.Secret
	for _, s := range b.GetStaticResources().GetSecrets() {
		if s.GetName() == xdsserver.EdgeClientSecret {
			client = s
		}
	}
	if client == nil {
		t.Fatalf("no static secret %q: revision clusters under mutual TLS name it", xdsserver.EdgeClientSecret)
	}
	if c := client.GetTlsCertificate(); c.GetCertificateChain().GetFilename() == "" || c.GetPrivateKey().GetFilename() == "" {
		t.Errorf("secret %s: want certificate and key files, got %v", client.GetName(), c)
	}
	ts := xds.GetTransportSocket()
	up := &tlsv3.UpstreamTlsContext{}
	if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(up) != nil {
		t.Fatalf("kiln-xds transport socket %v, want an UpstreamTlsContext", ts)
	}
	if err := up.ValidateAll(); err != nil {
		t.Errorf("kiln-xds TLS: %v", err)
	}
	ctc := up.GetCommonTlsContext()
	if sds := ctc.GetTlsCertificateSdsSecretConfigs(); len(sds) != 1 || sds[0].GetName() != xdsserver.EdgeClientSecret || sds[0].GetSdsConfig() != nil {
		t.Errorf("kiln-xds client certificate %v, want the static secret %s", sds, xdsserver.EdgeClientSecret)
	}
	if ctc.GetValidationContext().GetTrustedCa().GetFilename() == "" || len(ctc.GetValidationContext().GetMatchTypedSubjectAltNames()) == 0 {
		t.Errorf("kiln-xds must trust only the kiln CA and check the xds identity: %v", ctc.GetValidationContext())
	}
	if !slices.Equal(ctc.GetAlpnProtocols(), []string{"h2"}) {
		t.Errorf("kiln-xds ALPN %v, want h2 (gRPC servers require it)", ctc.GetAlpnProtocols())
	}
}
