package xds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
)

// selfSigned returns a PEM certificate and key for hosts.
func selfSigned(t *testing.T, hosts ...string) TLSSecret {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return TLSSecret{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
}

func withLabel(k, v string) routeOpt {
	return func(r *servingv1.Route) {
		if r.Metadata.Labels == nil {
			r.Metadata.Labels = map[string]string{}
		}
		r.Metadata.Labels[k] = v
	}
}

func withAnnotation(k, v string) routeOpt {
	return func(r *servingv1.Route) {
		if r.Metadata.Annotations == nil {
			r.Metadata.Annotations = map[string]string{}
		}
		r.Metadata.Annotations[k] = v
	}
}

func withAddress(u string) routeOpt {
	return func(r *servingv1.Route) { r.Status.Address = &metav1.Addressable{URL: u} }
}

func mapping(ns, name, ref string, claimed bool, secret string) v1beta1.DomainMapping {
	dm := v1beta1.DomainMapping{Metadata: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1beta1.DomainMappingSpec{Ref: v1beta1.KReference{Kind: "Service", Name: ref, Namespace: ns, APIVersion: servingv1.APIVersion}}}
	st := metav1.ConditionFalse
	if claimed {
		st = metav1.ConditionTrue
	}
	dm.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionDomainClaimed, Status: st}}
	if secret != "" {
		dm.Spec.TLS = &v1beta1.SecretTLS{SecretName: secret}
	}
	return dm
}

// configs indexes a translation's route configurations and listeners.
func configs(res Resources) (map[string]*routev3.RouteConfiguration, map[string]*listenerv3.Listener) {
	rcs := map[string]*routev3.RouteConfiguration{}
	for _, r := range res.Routes {
		rcs[r.Name] = r
	}
	ls := map[string]*listenerv3.Listener{}
	for _, l := range res.Listeners {
		ls[l.Name] = l
	}
	return rcs, ls
}

func vhostNames(rc *routev3.RouteConfiguration) []string {
	var out []string
	if rc == nil {
		return nil
	}
	for _, vh := range rc.VirtualHosts {
		out = append(out, vh.Name)
	}
	return out
}

func findVHost(rc *routev3.RouteConfiguration, name string) *routev3.VirtualHost {
	for _, vh := range rc.GetVirtualHosts() {
		if vh.Name == name {
			return vh
		}
	}
	return nil
}

func TestEdgeListeners(t *testing.T) {
	cert := selfSigned(t, "hello.example.org")
	def := selfSigned(t, "*.example.com")
	in := Input{
		Routes: []servingv1.Route{
			route("default", "hello", "http://hello.default.example.com", withTraffic("hello-00001", 100),
				withAddress("http://hello.default.svc.cluster.local")),
			route("default", "private", "http://private.default.svc.cluster.local", withTraffic("private-00001", 100),
				withLabel(servingv1.VisibilityLabelKey, servingv1.VisibilityClusterLocal), withAddress("http://private.default.svc.cluster.local"),
				withTag("v1", "private-00001", 0, "http://v1-private.default.svc.cluster.local")),
			route("default", "hidden", "http://hidden.default.example.com", withTraffic("hidden-00001", 100),
				withAnnotation(DisableRouteAnnotation, "true"), withAddress("http://hidden.default.svc.cluster.local")),
			route("default", "secure", "https://secure.default.example.com", withTraffic("secure-00001", 100),
				withAnnotation(HTTPOptionAnnotation, "redirected"), withAddress("http://secure.default.svc.cluster.local")),
		},
		DomainMappings: []v1beta1.DomainMapping{
			mapping("default", "hello.example.org", "hello", true, "hello-cert"),
			mapping("default", "private.example.org", "private", true, ""),
			mapping("other", "taken.example.org", "hello", false, ""),
		},
		Secrets: map[string]TLSSecret{"default/hello-cert": cert, "kiln-system/default-cert": def, "default/unused": cert},
	}
	res := Translate(in, Options{DefaultTLSSecret: "kiln-system/default-cert"})
	validateAll(t, res)
	rcs, ls := configs(res)

	if got, want := vhostNames(rcs[RouteConfigName]), []string{"default/hello", "default/secure", "domainmapping/default/hello.example.org", "domainmapping/default/private.example.org"}; !slices.Equal(got, want) {
		t.Errorf("public vhosts %v, want %v (cluster-local and disableRoute stay off)", got, want)
	}
	if got, want := vhostNames(rcs[InternalRouteConfigName]), []string{"default/hello", "default/hidden", "default/private", "default/private/tag/v1", "default/secure"}; !slices.Equal(got, want) {
		t.Errorf("internal vhosts %v, want %v", got, want)
	}
	priv := findVHost(rcs[InternalRouteConfigName], "default/private")
	if want := []string{"private.default.svc.cluster.local", "private.default.svc.cluster.local:8081", "private.default.svc", "private.default.svc:8081", "private.default", "private.default:8081"}; !slices.Equal(priv.Domains, want) {
		t.Errorf("internal domains %v, want %v", priv.Domains, want)
	}

	// Redirect on HTTP, served on HTTPS.
	red := findVHost(rcs[RouteConfigName], "default/secure").Routes[0].GetRedirect()
	if red == nil || !red.GetHttpsRedirect() || red.GetPortRedirect() != DefaultHTTPSPort || red.GetResponseCode() != routev3.RedirectAction_MOVED_PERMANENTLY {
		t.Errorf("secure on http: %v", findVHost(rcs[RouteConfigName], "default/secure").Routes[0])
	}
	if findVHost(rcs[HTTPSRouteConfigName], "default/secure").Routes[0].GetRoute() == nil {
		t.Errorf("secure on https is not routed")
	}

	// The mapping routes to its target's revisions with the target's host.
	dmr := findVHost(rcs[RouteConfigName], "domainmapping/default/hello.example.org").Routes[0].GetRoute()
	if dmr.GetHostRewriteLiteral() != "hello.default.svc.cluster.local" || dmr.GetWeightedClusters().GetClusters()[0].Name != "default/hello-00001" {
		t.Errorf("mapping route: %v", dmr)
	}

	https := ls[HTTPSListenerName]
	if https == nil || https.GetAddress().GetSocketAddress().GetPortValue() != DefaultHTTPSPort {
		t.Fatalf("https listener: %v", https)
	}
	if lf := https.GetListenerFilters(); len(lf) != 1 || lf[0].Name != listenerFilterTLSInspector {
		t.Errorf("https listener filters: %v (SNI matching needs the TLS inspector)", lf)
	}
	if len(https.FilterChains) != 1 || !slices.Equal(https.FilterChains[0].FilterChainMatch.ServerNames, []string{"hello.example.org"}) {
		t.Fatalf("sni chains: %v", https.FilterChains)
	}
	for _, fc := range append(https.FilterChains, https.DefaultFilterChain) {
		tc := &tlsv3.DownstreamTlsContext{}
		if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(tc); err != nil {
			t.Fatal(err)
		}
		if err := tc.ValidateAll(); err != nil {
			t.Errorf("tls context: %v", err)
		}
	}
	var names []string
	for _, s := range res.Secrets {
		if err := s.ValidateAll(); err != nil {
			t.Errorf("secret %s: %v", s.Name, err)
		}
		names = append(names, s.Name)
	}
	if want := []string{"default/hello-cert", "kiln-system/default-cert"}; !slices.Equal(names, want) {
		t.Errorf("secrets %v, want %v (only those a listener names)", names, want)
	}
	if ls[InternalListenerName].GetAddress().GetSocketAddress().GetPortValue() != DefaultInternalPort {
		t.Errorf("internal listener: %v", ls[InternalListenerName])
	}
}

func TestEdgeGlobalHTTPProtocol(t *testing.T) {
	routes := []servingv1.Route{
		route("default", "a", "https://a.default.example.com", withTraffic("a-00001", 100)),
		route("default", "b", "http://b.default.example.com", withTraffic("b-00001", 100), withAnnotation(HTTPOptionAnnotation, "enabled")),
	}
	for _, tc := range []struct {
		protocol string
		want     map[string]string // vhost -> "redirect" | "route"
	}{
		{"", map[string]string{"default/a": "route", "default/b": "route"}},
		{HTTPRedirected, map[string]string{"default/a": "redirect", "default/b": "route"}},
		{HTTPDisabled, map[string]string{"default/b": "route"}},
	} {
		t.Run("http-protocol="+tc.protocol, func(t *testing.T) {
			res := Translate(Input{Routes: routes, HTTPProtocol: tc.protocol}, Options{})
			validateAll(t, res)
			rcs, ls := configs(res)
			if _, ok := ls[HTTPSListenerName]; ok {
				t.Errorf("https listener without certificates")
			}
			got := map[string]string{}
			for _, vh := range rcs[RouteConfigName].VirtualHosts {
				got[vh.Name] = "route"
				if vh.Routes[0].GetRedirect() != nil {
					got[vh.Name] = "redirect"
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

// Every route configuration an edge serves removes client-sent internal
// headers, and applies that removal before the weighted clusters add the
// revision headers (most specific mutations last), so routing to the
// activator keeps working.
func TestEdgeRemovesInternalHeaders(t *testing.T) {
	in := Input{Routes: []servingv1.Route{
		route("default", "hello", "http://hello.default.example.com", withTraffic("hello-00001", 100),
			withAddress("http://hello.default.svc.cluster.local")),
	}}
	res := Translate(in, Options{})
	validateAll(t, res)
	if len(res.Routes) < 2 {
		t.Fatalf("want the public and internal route configurations, got %d", len(res.Routes))
	}
	for _, rc := range res.Routes {
		for _, h := range []string{"Knative-Serving-Revision", "Knative-Serving-Namespace", "K-Proxy-Request", "K-Network-Probe"} {
			if !slices.Contains(rc.RequestHeadersToRemove, h) {
				t.Errorf("route configuration %s does not remove %s: %v", rc.Name, h, rc.RequestHeadersToRemove)
			}
		}
		if hs := rc.RequestHeadersToAdd; len(hs) != 1 || hs[0].GetHeader().GetKey() != "Forwarded" ||
			hs[0].AppendAction != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			t.Errorf("route configuration %s does not append a Forwarded element: %v", rc.Name, hs)
		}
		if !rc.MostSpecificHeaderMutationsWins {
			t.Errorf("route configuration %s: the removal would run after the weighted clusters add the revision headers", rc.Name)
		}
	}
}
