package gateway

import (
	"net/http"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func vh(name string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
		}},
	}}}
}

func testConfig(t *testing.T, hcm *hcmv3.HttpConnectionManager, vhosts ...*routev3.VirtualHost) *config {
	t.Helper()
	if hcm == nil {
		hcm = &hcmv3.HttpConnectionManager{}
	}
	hcm.StatPrefix = "x"
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "rc"}}
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	return &config{
		listeners: map[string]*listenerv3.Listener{"l": {
			Name: "l",
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}}},
		}},
		routes:    map[string]*routev3.RouteConfiguration{"rc": {Name: "rc", VirtualHosts: vhosts}},
		clusters:  map[string]*clusterv3.Cluster{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
}

func TestVirtualHostSelection(t *testing.T) {
	vhosts := []*routev3.VirtualHost{
		vh("exact", "a.example.com", "a.example.com:8080"),
		vh("suffix-long", "*.b.example.com"),
		vh("suffix", "*.example.com"),
		vh("prefix", "api.*"),
		vh("any", "*"),
	}
	tests := []struct {
		name      string
		hcm       *hcmv3.HttpConnectionManager
		noDefault bool
		host      string
		want      string
	}{
		{name: "exact", host: "a.example.com", want: "exact"},
		{name: "exact is case-insensitive", host: "A.Example.COM", want: "exact"},
		{name: "exact with port form", host: "a.example.com:8080", want: "exact"},
		// Envoy matches the full Host, port included: with a "*" default
		// the unlisted port lands there, before any stripping.
		{name: "unlisted port goes to the default like Envoy", host: "a.example.com:9999", want: "any"},
		{name: "longest suffix wins", host: "x.b.example.com", want: "suffix-long"},
		{name: "suffix", host: "x.example.com", want: "suffix"},
		{name: "prefix", host: "api.other.org", want: "prefix"},
		{name: "default", host: "other.org", want: "any"},
		{name: "strip any host port", hcm: &hcmv3.HttpConnectionManager{StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}},
			host: "api.x:1", want: "prefix"},
		{name: "no match is nil", noDefault: true, host: "other.org", want: ""},
		{name: "bare host fallback without wildcards", noDefault: true, host: "a.example.com:9999", want: "exact"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := vhosts
			if tc.noDefault {
				vs = vhosts[:1]
			}
			tb, err := buildTable(testConfig(t, tc.hcm, vs...))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if v := tb.vhostFor(tc.host); v != nil {
				got = v.name
			}
			if got != tc.want {
				t.Errorf("vhostFor(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestBuildTableRejects(t *testing.T) {
	tests := []struct {
		name   string
		vhosts []*routev3.VirtualHost
		want   string
	}{
		{name: "duplicate domain", vhosts: []*routev3.VirtualHost{vh("a", "x.com"), vh("b", "x.com")}, want: "duplicate domain"},
		{name: "bad regex", vhosts: []*routev3.VirtualHost{{Name: "r", Domains: []string{"r.com"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherRegex}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		}}}}, want: "missing closing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildTable(testConfig(t, nil, tc.vhosts...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejectsInvalidResources(t *testing.T) {
	// A cluster without a name fails Envoy's validation: the gateway NACKs.
	a, _ := anypb.New(&clusterv3.Cluster{})
	_, err := decode(&discoveryv3.DiscoveryResponse{TypeUrl: typeCluster, Resources: []*anypb.Any{a}})
	if err == nil {
		t.Fatal("want a validation error")
	}
	b, _ := anypb.New(&clusterv3.Cluster{Name: "x"})
	_, err = decode(&discoveryv3.DiscoveryResponse{TypeUrl: typeCluster, Resources: []*anypb.Any{b, b}})
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate names: err = %v", err)
	}
}

func TestHeaderOps(t *testing.T) {
	h := http.Header{"A": {"1"}, "B": {"1"}, "Gone": {"x"}}
	toHeaderOps([]*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: "a", Value: "2"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
		{Header: &corev3.HeaderValue{Key: "b", Value: "2"}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD},
		{Header: &corev3.HeaderValue{Key: "c", Value: "2"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
		{Header: &corev3.HeaderValue{Key: "a", Value: "3"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
		{Header: &corev3.HeaderValue{Key: "d", Value: "2"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
	}, []string{"gone"}).apply(h)
	want := map[string][]string{"A": {"2"}, "B": {"1", "2"}, "C": {"2"}}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
}

var matcherRegex = matcherv3.RegexMatcher{Regex: "(unclosed"}
