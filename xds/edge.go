package xds

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
)

// The edge's listeners and route configurations besides kiln-http.
const (
	// HTTPSListenerName terminates TLS for mapped domains with a secret
	// (one filter chain per server name) and, when configured, every other
	// public host with the default certificate.
	HTTPSListenerName    = "kiln-https"
	HTTPSRouteConfigName = "kiln-https"
	// InternalListenerName serves every route under its cluster-local host
	// (NAME.NAMESPACE.svc.cluster.local, .svc and NAME.NAMESPACE): the only
	// listener a cluster-local route is on (Knative's kourier-internal).
	InternalListenerName    = "kiln-internal"
	InternalRouteConfigName = "kiln-internal"

	// DefaultHTTPSPort and DefaultInternalPort are the edge's other ports.
	DefaultHTTPSPort    = 8443
	DefaultInternalPort = 8081

	transportSocketTLS         = "envoy.transport_sockets.tls"
	listenerFilterTLSInspector = "envoy.filters.listener.tls_inspector"
)

// Knative annotations and labels the edge honours.
const (
	// HTTPOptionAnnotation (on a Service, propagated to its Route):
	// "redirected" answers plain HTTP with a 301 to https, "enabled" serves
	// it whatever config-network http-protocol says.
	HTTPOptionAnnotation = "networking.knative.dev/http-option"
	// DisableRouteAnnotation is OpenShift Serverless' opt-out from the
	// public edge: the route keeps its URL and Ready status but is served
	// on the internal listener only (until, say, a DomainMapping publishes
	// its host).
	DisableRouteAnnotation = "serving.knative.openshift.io/disableRoute"

	// HTTP protocol modes (config-network http-protocol).
	HTTPEnabled    = "enabled"
	HTTPRedirected = "redirected"
	HTTPDisabled   = "disabled"
)

// TLSSecret is a certificate chain and its private key, PEM encoded.
type TLSSecret struct {
	Cert, Key []byte
}

// SecretName is the SDS name of secret ns/name.
func SecretName(namespace, name string) string { return namespace + "/" + name }

// publicRoute reports whether r belongs on the public listeners: not
// cluster-local, not opted out with DisableRouteAnnotation.
func publicRoute(r *servingv1.Route) bool {
	if strings.EqualFold(r.Metadata.Labels[servingv1.VisibilityLabelKey], servingv1.VisibilityClusterLocal) {
		return false
	}
	if v, _ := strconv.ParseBool(r.Metadata.Annotations[DisableRouteAnnotation]); v {
		return false
	}
	// A cluster-local URL on the public edge would publish the service
	// through a spoofed Host header, whatever its labels say.
	if u, err := url.Parse(r.Status.URL); err == nil && isClusterLocalHost(u.Hostname()) {
		return false
	}
	return true
}

func isClusterLocalHost(h string) bool {
	return strings.HasSuffix(strings.ToLower(h), ".svc.cluster.local")
}

// httpMode is how the public HTTP listener treats a route's hosts.
func httpMode(r *servingv1.Route, global string) string {
	switch strings.ToLower(r.Metadata.Annotations[HTTPOptionAnnotation]) {
	case HTTPRedirected:
		return HTTPRedirected
	case HTTPEnabled:
		return HTTPEnabled
	}
	if global == "" {
		return HTTPEnabled
	}
	return global
}

// mainTargets is a route's weighted revisions, without tag-only entries.
func mainTargets(r *servingv1.Route) []weighted {
	ns := r.Metadata.Namespace
	var main []weighted
	for _, t := range r.Status.Traffic {
		if t.RevisionName == "" || t.Percent == nil || *t.Percent <= 0 {
			continue
		}
		main = addWeight(main, ns, t.RevisionName, uint32(*t.Percent))
	}
	return main
}

// edge collects what Translate emits besides the public virtual hosts.
type edge struct {
	opts      Options
	in        *Input
	routes    map[string]*servingv1.Route // ns/name
	revisions map[string]bool             // clusters referenced by any vhost
	warnings  *[]string
	// modes maps a public vhost name to its HTTP mode.
	modes map[string]string
	// sni maps a TLS server name to its SDS secret name.
	sni map[string]string
}

func (e *edge) warn(format string, args ...any) {
	*e.warnings = append(*e.warnings, fmt.Sprintf(format, args...))
}

// domainMappingVHosts adds a virtual host per ready DomainMapping whose
// target route has traffic, claiming its domain in claimed. A mapping's
// host is rewritten to the target's cluster-local host, as Knative's
// domain-mapping ingress does.
func (e *edge) domainMappingVHosts(claimed map[string]string) []*routev3.VirtualHost {
	dms := append([]v1beta1.DomainMapping(nil), e.in.DomainMappings...)
	sort.Slice(dms, func(i, j int) bool {
		a, b := dms[i].Metadata, dms[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var out []*routev3.VirtualHost
	for i := range dms {
		dm := &dms[i]
		// DomainClaimed False means another namespace holds the name; the
		// controller decides, the edge only follows.
		if c := dm.Status.GetCondition(v1beta1.ConditionDomainClaimed); c == nil || c.Status != "True" {
			continue
		}
		ref := dm.Spec.Ref
		if ref.Kind != servingv1.KindService && ref.Kind != servingv1.KindRoute {
			continue
		}
		r := e.routes[dm.Metadata.Namespace+"/"+ref.Name]
		if r == nil {
			continue
		}
		targets := mainTargets(r)
		if len(targets) == 0 {
			continue
		}
		name := "domainmapping/" + dm.Metadata.Namespace + "/" + dm.Metadata.Name
		host := strings.ToLower(dm.Metadata.Name)
		domains := hostDomains(host, e.opts.HTTPPort, e.opts.HTTPSPort)
		if owner, ok := claimed[host]; ok {
			e.warn("virtual host %s: domain %q already served by %s", name, host, owner)
			continue
		}
		for _, d := range domains {
			claimed[d] = name
		}
		for _, t := range targets {
			e.revisions[t.cluster] = true
		}
		// Knative's mapping ingress is named after the DomainMapping and
		// carries its labels and annotations.
		vh := withMetadata(makeVirtualHost(name, domains, targets, e.in.Timeouts, e.opts.RouteTimeoutGrace), objectMetadata{
			name: dm.Metadata.Name, namespace: dm.Metadata.Namespace,
			labels: dm.Metadata.Labels, annotations: dm.Metadata.Annotations,
		})
		if r.Status.Address != nil {
			if u, err := url.Parse(r.Status.Address.URL); err == nil && u.Host != "" {
				for _, rt := range vh.Routes {
					rt.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: u.Host}
				}
			}
		}
		out = append(out, vh)
		e.modes[name] = e.in.HTTPProtocol
		if dm.Spec.TLS != nil && dm.Spec.TLS.SecretName != "" {
			sn := SecretName(dm.Metadata.Namespace, dm.Spec.TLS.SecretName)
			if _, ok := e.in.Secrets[sn]; ok {
				e.sni[host] = sn
			} else {
				e.warn("domain mapping %s/%s: secret %q not found; no HTTPS for %s", dm.Metadata.Namespace, dm.Metadata.Name, dm.Spec.TLS.SecretName, host)
			}
		}
	}
	return out
}

// internalVHosts serves every route (public or not) under its cluster-local
// names on the internal listener. Tags are served internally for
// cluster-local routes, whose tag URLs are cluster-local.
func (e *edge) internalVHosts(routes []servingv1.Route) []*routev3.VirtualHost {
	var out []*routev3.VirtualHost
	seen := map[string]string{}
	add := func(name, host string, targets []weighted, meta objectMetadata) {
		if len(targets) == 0 || host == "" {
			return
		}
		domains := hostDomains(host, e.opts.InternalPort)
		if isClusterLocalHost(host) {
			short := strings.TrimSuffix(host, ".cluster.local")
			domains = append(domains, hostDomains(short, e.opts.InternalPort)...)
			domains = append(domains, hostDomains(strings.TrimSuffix(short, ".svc"), e.opts.InternalPort)...)
		}
		for _, d := range domains {
			if owner, ok := seen[d]; ok {
				e.warn("internal virtual host %s: domain %q already served by %s", name, d, owner)
				return
			}
		}
		for _, d := range domains {
			seen[d] = name
		}
		for _, t := range targets {
			e.revisions[t.cluster] = true
		}
		out = append(out, withMetadata(makeVirtualHost(name, domains, targets, e.in.Timeouts, e.opts.RouteTimeoutGrace), meta))
	}
	for i := range routes {
		r := &routes[i]
		ns := r.Metadata.Namespace
		base := ns + "/" + r.Metadata.Name
		host := r.Metadata.Name + "." + ns + ".svc.cluster.local"
		if r.Status.Address != nil {
			if u, err := url.Parse(r.Status.Address.URL); err == nil && u.Hostname() != "" {
				host = strings.ToLower(u.Hostname())
			}
		}
		meta := routeMetadata(r)
		add(base, host, mainTargets(r), meta)
		for _, t := range r.Status.Traffic {
			if t.Tag == "" || t.URL == "" || t.RevisionName == "" {
				continue
			}
			u, err := url.Parse(t.URL)
			if err != nil || !isClusterLocalHost(u.Hostname()) {
				continue
			}
			add(base+"/tag/"+t.Tag, strings.ToLower(u.Hostname()), []weighted{{namespace: ns, revision: t.RevisionName, cluster: ClusterName(ns, t.RevisionName), weight: 100}}, meta)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// hostDomains is host plus host:port for each distinct port.
func hostDomains(host string, ports ...uint32) []string {
	out := []string{host}
	seen := map[uint32]bool{}
	for _, p := range ports {
		if p == 0 || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, net.JoinHostPort(host, strconv.Itoa(int(p))))
	}
	return out
}

// httpVHosts is the public HTTP listener's view of the public vhosts:
// redirected ones answer 301 to https, disabled ones are left out.
func (e *edge) httpVHosts(public []*routev3.VirtualHost) []*routev3.VirtualHost {
	out := make([]*routev3.VirtualHost, 0, len(public))
	for _, vh := range public {
		switch e.modes[vh.Name] {
		case HTTPDisabled:
			continue
		case HTTPRedirected:
			out = append(out, e.redirectVHost(vh))
		default:
			out = append(out, vh)
		}
	}
	return out
}

// redirectVHost answers every request for vh's domains with a permanent
// redirect to the same URL over https (on the HTTPS port unless it is 443).
func (e *edge) redirectVHost(vh *routev3.VirtualHost) *routev3.VirtualHost {
	ra := &routev3.RedirectAction{
		SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
		ResponseCode:           routev3.RedirectAction_MOVED_PERMANENTLY,
	}
	if e.opts.HTTPSPort != 443 {
		ra.PortRedirect = e.opts.HTTPSPort
	}
	var md *corev3.Metadata
	if len(vh.Routes) > 0 {
		md = vh.Routes[0].Metadata // the redirect is still that route's
	}
	return &routev3.VirtualHost{
		Name:    vh.Name,
		Domains: vh.Domains,
		Routes: []*routev3.Route{{
			Name:     vh.Name + "/redirect",
			Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action:   &routev3.Route_Redirect{Redirect: ra},
			Metadata: md,
		}},
	}
}

// listenersAndRoutes emits the three listeners (HTTPS only when it has a
// certificate to serve) and their route configurations, and the SDS
// secrets the HTTPS listener names.
func (e *edge) listenersAndRoutes(public, internal []*routev3.VirtualHost) ([]*listenerv3.Listener, []*routev3.RouteConfiguration, []*tlsv3.Secret) {
	routeConfig := func(name string, vhs []*routev3.VirtualHost) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhs, ValidateClusters: wrapperspb.Bool(false),
			RequestHeadersToRemove: slices.Clone(InternalHeaders), MostSpecificHeaderMutationsWins: true,
			RequestHeadersToAdd: []*corev3.HeaderValueOption{forwardedHeader()}}
	}
	listeners := []*listenerv3.Listener{
		makeListener(e.opts),
		namedListener(InternalListenerName, e.opts.HTTPListenAddress, e.opts.InternalPort,
			[]*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter("kiln_internal", InternalRouteConfigName)}}}),
	}
	routes := []*routev3.RouteConfiguration{
		routeConfig(RouteConfigName, e.httpVHosts(public)),
		routeConfig(InternalRouteConfigName, internal),
	}

	var chains []*listenerv3.FilterChain
	used := map[string]bool{}
	hosts := make([]string, 0, len(e.sni))
	for h := range e.sni {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		sn := e.sni[h]
		used[sn] = true
		chains = append(chains, &listenerv3.FilterChain{
			Name:             "sni/" + h,
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{h}},
			TransportSocket:  tlsTransport(sn),
			Filters:          []*listenerv3.Filter{hcmFilter("kiln_https", HTTPSRouteConfigName)},
		})
	}
	var fallback *listenerv3.FilterChain
	if d := e.opts.DefaultTLSSecret; d != "" {
		if _, ok := e.in.Secrets[d]; ok {
			used[d] = true
			fallback = &listenerv3.FilterChain{
				Name:            "default",
				TransportSocket: tlsTransport(d),
				Filters:         []*listenerv3.Filter{hcmFilter("kiln_https", HTTPSRouteConfigName)},
			}
		} else {
			e.warn("default TLS secret %q not found", d)
		}
	}
	var secrets []*tlsv3.Secret
	if len(chains) > 0 || fallback != nil {
		l := namedListener(HTTPSListenerName, e.opts.HTTPListenAddress, e.opts.HTTPSPort, chains)
		l.DefaultFilterChain = fallback
		// Envoy matches server_names only with the TLS inspector reading
		// the ClientHello first (no longer injected implicitly).
		inspector, _ := anypb.New(&tlsinspectorv3.TlsInspector{})
		l.ListenerFilters = []*listenerv3.ListenerFilter{{
			Name:       listenerFilterTLSInspector,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: inspector},
		}}
		listeners = append(listeners, l)
		routes = append(routes, routeConfig(HTTPSRouteConfigName, public))
		names := make([]string, 0, len(used))
		for n := range used {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := e.in.Secrets[n]
			secrets = append(secrets, &tlsv3.Secret{
				Name: n,
				Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.Cert}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.Key}},
				}},
			})
		}
	}
	sort.Slice(listeners, func(i, j int) bool { return listeners[i].Name < listeners[j].Name })
	sort.Slice(routes, func(i, j int) bool { return routes[i].Name < routes[j].Name })
	return listeners, routes, secrets
}

func hcmFilter(statPrefix, routeConfig string) *listenerv3.Filter {
	router, _ := anypb.New(&routerv3.Router{})
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: routeConfig,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       httpFilterRouter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		UseRemoteAddress: wrapperspb.Bool(true),
	}
	a, _ := anypb.New(hcm)
	return &listenerv3.Filter{Name: networkFilterHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

func namedListener(name, address string, port uint32, chains []*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       address,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: chains,
	}
}

// tlsTransport terminates TLS with the SDS secret name, fetched over ADS.
func tlsTransport(secret string) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secret, SdsConfig: adsSource()}},
		AlpnProtocols:                  []string{"h2", "http/1.1"},
	}}
	a, _ := anypb.New(ctx)
	return &corev3.TransportSocket{Name: transportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// forwardedHeader appends this edge's RFC 7239 Forwarded element (the
// client's address, quoted, and the scheme it used) to what the client
// sent, as the kilnd gateway does, so the container sees the runtime
// contract's Forwarded header behind Envoy too.
func forwardedHeader() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: "Forwarded",
			Value: `for="%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%";proto=%REQ(X-FORWARDED-PROTO)%`},
		AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
	}
}
