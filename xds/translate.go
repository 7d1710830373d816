package xds

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
)

// Names of the resources kiln emits. Edges find the route configuration by
// name through the listener, so these are part of the edge contract.
const (
	ListenerName    = "kiln-http"
	RouteConfigName = "kiln-http"

	// HeaderRevision and HeaderNamespace are added by every weighted cluster
	// so the activator and queue-proxy know the target revision whichever
	// way the request came (Knative's own header names).
	HeaderRevision  = "Knative-Serving-Revision"
	HeaderNamespace = "Knative-Serving-Namespace"

	// DefaultRouteTimeoutGrace is Options.RouteTimeoutGrace's default.
	DefaultRouteTimeoutGrace = 10 * time.Second
	// DefaultTimeout is Knative's default revision timeoutSeconds.
	DefaultTimeout = 300 * time.Second
	// DefaultHTTPPort is the edge's HTTP port.
	DefaultHTTPPort = 8080

	// ConnectTimeout bounds the TCP connect to a queue-proxy or the
	// activator; both are on the local network.
	ConnectTimeout = 2 * time.Second

	httpFilterRouter = "envoy.filters.http.router"
	networkFilterHCM = "envoy.filters.network.http_connection_manager"
)

// Options shape the emitted edge configuration.
type Options struct {
	// HTTPListenAddress is the address edges bind. Optional, default 0.0.0.0.
	HTTPListenAddress string
	// HTTPPort is the edge HTTP port. Optional, default 8080.
	HTTPPort uint32
	// ActivatorAddress is host:port of the activator when none is
	// registered under activators/ (Input.Activators). Optional: with an
	// activator, a revision with no ready instance, or whose scale record
	// puts the activator in the path, gets the activators as its only
	// endpoints (Knative "proxy mode"); without any such a revision gets
	// its ready instances, if any, and edges answer 503 without. An empty
	// host means 127.0.0.1.
	ActivatorAddress string
	// HTTPSPort is the edge HTTPS port. Optional, default 8443.
	HTTPSPort uint32
	// InternalPort is the port of the internal (cluster-local) listener.
	// Optional, default 8081.
	InternalPort uint32
	// DefaultTLSSecret, "namespace/name" of a TLS secret, is served on the
	// HTTPS port to clients whose server name no mapping claims. Optional.
	DefaultTLSSecret string
	// SecretKeys open secrets sealed at rest. Optional: without them only
	// plain-text secrets are served; sealed ones are dropped with a warning.
	SecretKeys *encryption.Keys
	// UpstreamCA, the kiln CA certificate (PEM), makes every revision
	// cluster speak mutual TLS to its endpoints (queue-proxies and
	// activators), presenting EdgeClientSecret. Optional: empty keeps
	// plain HTTP upstream.
	UpstreamCA []byte
	// RouteTimeoutGrace is how far past its revisions' longest
	// timeoutSeconds a route's own timeout lies. The queue-proxy and the
	// activator end a request at timeoutSeconds, a response that already
	// started cleanly (Knative's timeout handler); the edge's bound is a
	// safety net behind them and must not cut such a response first.
	// Optional, default DefaultRouteTimeoutGrace.
	RouteTimeoutGrace time.Duration
}

func (o Options) withDefaults() Options {
	if o.RouteTimeoutGrace <= 0 {
		o.RouteTimeoutGrace = DefaultRouteTimeoutGrace
	}
	if o.HTTPListenAddress == "" {
		o.HTTPListenAddress = "0.0.0.0"
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = DefaultHTTPPort
	}
	if o.HTTPSPort == 0 {
		o.HTTPSPort = DefaultHTTPSPort
	}
	if o.InternalPort == 0 {
		o.InternalPort = DefaultInternalPort
	}
	return o
}

// Input is the snapshot of cluster state that Translate reads.
type Input struct {
	// Routes are Knative Routes; only Status (URL, Traffic) is read, since
	// the controller resolves spec to revisions there.
	Routes []servingv1.Route
	// Instances are observed instances; only ready ones with an endpoint
	// become endpoints.
	Instances []cluster.Instance
	// Timeouts holds a revision's request timeout by ClusterName(ns, rev).
	// Optional; a missing revision gets DefaultTimeout.
	Timeouts map[string]time.Duration
	// ActivatorInPath holds, by ClusterName(ns, rev), the autoscaler's
	// Scale.ActivatorInPath: true routes the revision through the activator
	// even when it has ready instances (too little burst capacity).
	// Optional; a missing revision is served by its instances.
	ActivatorInPath map[string]bool
	// Activators are the host:port of every live activator
	// (activators/ records): all are endpoints of a revision in proxy
	// mode, and each takes its share of every instance's
	// containerConcurrency. Optional; empty means Options.ActivatorAddress.
	Activators []string
	// DomainMappings are published on the public listeners once their
	// controller has claimed the domain (status DomainClaimed True).
	DomainMappings []v1beta1.DomainMapping
	// Secrets holds TLS secrets by SecretName(ns, name); only those a
	// listener names are emitted (over SDS).
	Secrets map[string]TLSSecret
	// HTTPProtocol is config-network http-protocol: enabled (default),
	// redirected or disabled, for routes without their own http-option.
	HTTPProtocol string
}

// Resources are the Envoy resources for one snapshot, each sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
	// Warnings name inputs Translate had to leave out (a host claimed by two
	// routes, an endpoint that is not an IP address), for the caller to log.
	Warnings []string
}

// ClusterName is the Envoy cluster (and EDS service) name of a revision.
func ClusterName(namespace, revision string) string { return namespace + "/" + revision }

// Translate builds the edge configuration for in. It is a pure function:
// the same input gives the same (deterministically ordered) output.
func Translate(in Input, opts Options) Resources {
	opts = opts.withDefaults()
	var res Resources

	routes := append([]servingv1.Route(nil), in.Routes...)
	// The oldest claim on a host should win, but Translate has no clock;
	// sorting by namespace/name at least makes the winner stable.
	sort.Slice(routes, func(i, j int) bool {
		a, b := routes[i].Metadata, routes[j].Metadata
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})

	claimed := map[string]string{} // domain -> virtual host name
	revisions := map[string]bool{} // cluster names referenced by any vhost
	var vhosts []*routev3.VirtualHost
	e := &edge{opts: opts, in: &in, routes: map[string]*servingv1.Route{}, revisions: revisions,
		warnings: &res.Warnings, modes: map[string]string{}, sni: map[string]string{}}
	for i := range routes {
		e.routes[routes[i].Metadata.Namespace+"/"+routes[i].Metadata.Name] = &routes[i]
	}

	addVHost := func(name, rawURL string, targets []weighted, meta objectMetadata) {
		if len(targets) == 0 {
			return
		}
		domains, err := domainsFor(rawURL, opts.HTTPPort, opts.HTTPSPort)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("virtual host %s: %v", name, err))
			return
		}
		for _, d := range domains {
			if owner, ok := claimed[d]; ok {
				res.Warnings = append(res.Warnings, fmt.Sprintf("virtual host %s: domain %q already served by %s", name, d, owner))
				return
			}
		}
		for _, d := range domains {
			claimed[d] = name
		}
		for _, t := range targets {
			revisions[t.cluster] = true
		}
		vhosts = append(vhosts, withMetadata(makeVirtualHost(name, domains, targets, in.Timeouts, opts.RouteTimeoutGrace), meta))
	}

	for _, r := range routes {
		if !publicRoute(&r) {
			continue // served on the internal listener only
		}
		ns := r.Metadata.Namespace
		base := ns + "/" + r.Metadata.Name
		mode := httpMode(&r, in.HTTPProtocol)
		e.modes[base] = mode
		var main []weighted
		for _, t := range r.Status.Traffic {
			if t.RevisionName == "" || t.Percent == nil || *t.Percent <= 0 {
				continue
			}
			main = addWeight(main, ns, t.RevisionName, uint32(*t.Percent))
		}
		meta := routeMetadata(&r)
		if r.Status.URL != "" {
			addVHost(base, r.Status.URL, main, meta)
		}
		for _, t := range r.Status.Traffic {
			// A tag gets its own host even at 0%: that is how a new revision
			// is tested before it takes traffic.
			if t.Tag == "" || t.URL == "" || t.RevisionName == "" {
				continue
			}
			e.modes[base+"/tag/"+t.Tag] = mode
			addVHost(base+"/tag/"+t.Tag, t.URL, []weighted{{namespace: ns, revision: t.RevisionName, cluster: ClusterName(ns, t.RevisionName), weight: 100}}, meta)
		}
	}
	vhosts = append(vhosts, e.domainMappingVHosts(claimed)...)
	sort.Slice(vhosts, func(i, j int) bool { return vhosts[i].Name < vhosts[j].Name })
	// Route configurations are published in the same snapshot as their
	// clusters, so they do not ask Envoy to reject unknown clusters.
	res.Listeners, res.Routes, res.Secrets = e.listenersAndRoutes(vhosts, e.internalVHosts(routes))

	ready := map[string][]*endpointv3.LbEndpoint{}
	for _, inst := range in.Instances {
		if !inst.Ready || inst.Endpoint == "" {
			continue
		}
		name := ClusterName(inst.Namespace, inst.Revision)
		if !revisions[name] {
			continue
		}
		ep, err := lbEndpoint(inst.Endpoint)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("instance %s/%s of %s: %v", inst.Node, inst.Instance, name, err))
			continue
		}
		ready[name] = append(ready[name], ep)
	}
	activatorAddrs := in.Activators
	if len(activatorAddrs) == 0 && opts.ActivatorAddress != "" {
		activatorAddrs = []string{opts.ActivatorAddress}
	}
	var activators []*endpointv3.LbEndpoint
	for _, addr := range activatorAddrs {
		ep, err := lbEndpoint(addr)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("activator %s: %v", addr, err))
			continue
		}
		activators = append(activators, ep)
	}
	sort.Slice(activators, func(i, j int) bool { return endpointKey(activators[i]) < endpointKey(activators[j]) })

	names := make([]string, 0, len(revisions))
	for n := range revisions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		res.Clusters = append(res.Clusters, withUpstreamTLS(makeCluster(name), opts))
		eps := ready[name]
		sort.Slice(eps, func(i, j int) bool { return endpointKey(eps[i]) < endpointKey(eps[j]) })
		if len(activators) > 0 && (len(eps) == 0 || in.ActivatorInPath[name]) {
			eps = activators
		}
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
		if len(eps) > 0 {
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}
		}
		res.Endpoints = append(res.Endpoints, cla)
	}
	return res
}

type weighted struct {
	namespace, revision, cluster string
	weight                       uint32
}

// addWeight merges entries that name the same revision (a revision can be
// listed twice, e.g. once under a tag), as Knative does.
func addWeight(ws []weighted, ns, rev string, w uint32) []weighted {
	name := ClusterName(ns, rev)
	for i := range ws {
		if ws[i].cluster == name {
			ws[i].weight += w
			return ws
		}
	}
	return append(ws, weighted{namespace: ns, revision: rev, cluster: name, weight: w})
}

// domainsFor gives the host and host:port forms of a route URL: Envoy
// matches the Host header including its port, and clients send the port
// when the edge is not on 80/443.
func domainsFor(rawURL string, edgePorts ...uint32) ([]string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse url %q: %w", rawURL, err)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return nil, fmt.Errorf("url %q has no host", rawURL)
	}
	ports := edgePorts
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
		ports = append(ports, uint32(p))
	}
	return hostDomains(host, ports...), nil
}

func makeVirtualHost(name string, domains []string, targets []weighted, timeouts map[string]time.Duration, grace time.Duration) *routev3.VirtualHost {
	var timeout time.Duration
	clusters := make([]*routev3.WeightedCluster_ClusterWeight, 0, len(targets))
	for _, t := range targets {
		d, ok := timeouts[t.cluster]
		if !ok || d <= 0 {
			d = DefaultTimeout
		}
		// Envoy has one timeout per route; the longest revision's wins so no
		// revision is cut short of what it promises.
		timeout = max(timeout, d)
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   t.cluster,
			Weight: wrapperspb.UInt32(t.weight),
			RequestHeadersToAdd: []*corev3.HeaderValueOption{
				setHeader(HeaderRevision, t.revision),
				setHeader(HeaderNamespace, t.namespace),
			},
		})
	}
	action := func(retry *routev3.RetryPolicy) *routev3.Route_Route {
		return &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: clusters},
			},
			Timeout:     durationpb.New(timeout + grace),
			RetryPolicy: retry,
		}}
	}
	// Two entries with the same clusters: requests of an idempotent method
	// may also be sent again after a reset (an upstream that died
	// mid-request); every other request only when it never left.
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Name: name + "/idempotent",
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers:       []*routev3.HeaderMatcher{idempotentMethods()},
			},
			Action: action(resetRetryPolicy()),
		}, {
			Name:   name,
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: action(connectRetryPolicy()),
		}},
	}
}

// idempotentMethods matches the requests RFC 9110 (9.2.2) lets a client
// repeat after a broken connection: GET, HEAD, OPTIONS and TRACE.
func idempotentMethods() *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "GET|HEAD|OPTIONS|TRACE"}},
		}},
	}
}

// resetRetryPolicy is connectRetryPolicy that also retries a request
// whose upstream did not answer at all (its connection reset or closed
// after the request was sent): only for the idempotent methods' route.
func resetRetryPolicy() *routev3.RetryPolicy {
	p := connectRetryPolicy()
	p.RetryOn = "connect-failure,refused-stream,reset"
	return p
}

// connectRetryPolicy retries, on other hosts, only requests that provably
// never reached an upstream: the connection failed, the stream was refused
// or reset before the request was sent. Anything else could have run.
func connectRetryPolicy() *routev3.RetryPolicy {
	prev, _ := anypb.New(&previoushostsv3.PreviousHostsPredicate{})
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset-before-request",
		NumRetries: wrapperspb.UInt32(3),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: prev},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

// connectOutlierDetection ejects an endpoint at its first locally detected
// failure (connection refused or timed out) for 5s, so the next requests
// skip it before EDS drops it; 5xx answers (an overloaded queue-proxy's
// 503) eject nothing.
func connectOutlierDetection() *clusterv3.OutlierDetection {
	zero := wrapperspb.UInt32(0)
	return &clusterv3.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		ConsecutiveLocalOriginFailure:          wrapperspb.UInt32(1),
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100),
		EnforcingConsecutive_5Xx:               zero,
		EnforcingConsecutiveGatewayFailure:     zero,
		EnforcingSuccessRate:                   zero,
		EnforcingLocalOriginSuccessRate:        zero,
		BaseEjectionTime:                       durationpb.New(5 * time.Second),
		MaxEjectionPercent:                     wrapperspb.UInt32(100),
	}
}

// setHeader overwrites, so a client cannot pick a revision by sending the
// header itself.
func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func makeListener(opts Options) *listenerv3.Listener {
	router, _ := anypb.New(&routerv3.Router{})
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "kiln_http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       httpFilterRouter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		// The edge is the first proxy a client reaches: it appends the
		// client's address to X-Forwarded-For and sets X-Forwarded-Proto.
		UseRemoteAddress: wrapperspb.Bool(true),
	}
	hcmAny, _ := anypb.New(hcm)
	return &listenerv3.Listener{
		Name: ListenerName,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       opts.HTTPListenAddress,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: opts.HTTPPort},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       networkFilterHCM,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}
}

// unlimited stands for "no limit" in circuit breakers: the queue-proxy's
// breaker enforces containerConcurrency, and Envoy's defaults (1024
// requests per cluster) would cap a busy revision below it.
const unlimited = 1 << 30

func makeCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		OutlierDetection:     connectOutlierDetection(),
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections:     wrapperspb.UInt32(unlimited),
			MaxPendingRequests: wrapperspb.UInt32(unlimited),
			MaxRequests:        wrapperspb.UInt32(unlimited),
		}}},
	}
}

// lbEndpoint turns host:port into an endpoint. Envoy's EDS only accepts IP
// addresses (it does not resolve names), so "localhost" is mapped to
// 127.0.0.1, an empty host means 127.0.0.1, and any other name is refused.
func lbEndpoint(hostport string) (*endpointv3.LbEndpoint, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("endpoint %q: bad port", hostport)
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: host is not an IP address", hostport)
	}
	return &endpointv3.LbEndpoint{
		HealthStatus: corev3.HealthStatus_HEALTHY,
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol:      corev3.SocketAddress_TCP,
				Address:       addr.String(),
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
			}}},
		}},
	}, nil
}

func endpointKey(ep *endpointv3.LbEndpoint) string {
	sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
}
