package envoy

import (
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
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

	clusters := b.GetStaticResources().GetClusters()
	if len(clusters) != 1 || clusters[0].GetName() != "kiln-xds" {
		t.Fatalf("static clusters %v, want kiln-xds", clusters)
	}
	xds := clusters[0]
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 18000 {
		t.Errorf("kiln-xds endpoint %v, want 127.0.0.1:18000", sa)
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
}
