package gateway

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// table is one immutable routing configuration. Only the round-robin
// counters inside upstreams change after it is built.
type table struct {
	port      uint32 // the listener's port, from LDS
	stripPort stripMode
	vhosts    vhostIndex
	// headersToAdd/Remove come from the RouteConfiguration itself.
	headers headerOps
	// mostSpecificWins is most_specific_header_mutations_wins: apply the
	// route configuration's mutations first and the weighted cluster's last.
	mostSpecificWins bool
}

type stripMode int

const (
	stripNone stripMode = iota
	stripMatching
	stripAny
)

type vhostIndex struct {
	exact  map[string]*vhost
	suffix []wildcard // "*.example.com": longest first
	prefix []wildcard // "example.*": longest first
	any    *vhost
}

type wildcard struct {
	part string
	vh   *vhost
}

type vhost struct {
	name    string
	routes  []*route
	headers headerOps
}

type route struct {
	name    string
	match   func(path string) bool
	headers headerOps

	// Exactly one of clusters, direct or redirect is set.
	clusters []weightedCluster
	total    uint32
	timeout  time.Duration
	direct   *directResponse
	// redirect, when set, answers every match with a redirect (listeners.go).
	redirect *redirectAction
	// hostRewrite replaces the Host header sent upstream (Envoy's
	// host_rewrite_literal); "" keeps it.
	hostRewrite string
}

type directResponse struct {
	status int
	body   string
}

type weightedCluster struct {
	name     string
	weight   uint32
	headers  headerOps
	upstream *upstream // nil when the cluster is unknown
}

type upstream struct {
	name           string
	endpoints      []string // host:port
	connectTimeout time.Duration
	// tls: the cluster has an UpstreamTlsContext transport socket, so
	// its endpoints speak mutual TLS.
	tls  bool
	next atomic.Uint64
}

type headerOp struct {
	key, value string
	action     corev3.HeaderValueOption_HeaderAppendAction
}

type headerOps struct {
	add    []headerOp
	remove []string
}

// config is the raw xDS state the table is built from.
type config struct {
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	secrets   map[string]*tlsv3.Secret
}

// httpListener picks the listener the gateway serves: the first (by name)
// whose filter chain has an HttpConnectionManager. The gateway serves one
// HTTP listener; kiln emits exactly one.
func (c *config) httpListener() (*listenerv3.Listener, *hcmv3.HttpConnectionManager, error) {
	names := make([]string, 0, len(c.listeners))
	for n := range c.listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := c.listeners[n]
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(hcm) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					return nil, nil, fmt.Errorf("listener %s: %w", n, err)
				}
				return l, hcm, nil
			}
		}
	}
	return nil, nil, nil
}

// wants lists the RDS, EDS and SDS names the current LDS and CDS state
// reference: the gateway's subscriptions, exactly as Envoy would make them.
func (c *config) wants() (routes, clusters, secrets []string) {
	specs, _ := c.listenerSpecs()
	seenR, seenS := map[string]bool{}, map[string]bool{}
	for _, sp := range specs {
		if !seenR[sp.route] {
			seenR[sp.route] = true
			routes = append(routes, sp.route)
		}
		if sp.tls != nil {
			for _, n := range sp.tls.secrets() {
				if !seenS[n] {
					seenS[n] = true
					secrets = append(secrets, n)
				}
			}
		}
	}
	for name, cl := range c.clusters {
		if cl.GetType() == clusterv3.Cluster_EDS {
			clusters = append(clusters, edsName(name, cl))
		}
	}
	sort.Strings(routes)
	sort.Strings(clusters)
	sort.Strings(secrets)
	return routes, clusters, secrets
}

func edsName(name string, cl *clusterv3.Cluster) string {
	if s := cl.GetEdsClusterConfig().GetServiceName(); s != "" {
		return s
	}
	return name
}

// complete reports whether every resource the config references has arrived.
func (c *config) complete() bool {
	l, _, _ := c.httpListener()
	if l == nil {
		return false
	}
	routes, clusters, secrets := c.wants()
	for _, r := range routes {
		if c.routes[r] == nil {
			return false
		}
	}
	for _, s := range secrets {
		if c.secrets[s] == nil {
			return false
		}
	}
	for _, e := range clusters {
		if c.endpoints[e] == nil {
			return false
		}
	}
	return true
}

// buildTable compiles the first HTTP listener's routing table (see
// buildState for every listener).
func buildTable(c *config) (*table, error) {
	l, hcm, err := c.httpListener()
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("no listener with an http_connection_manager")
	}
	return buildListenerTable(c, l, hcm)
}

// buildListenerTable compiles one listener's routing table. It fails only
// on configuration the gateway cannot honour, which the caller NACKs.
func buildListenerTable(c *config, l *listenerv3.Listener, hcm *hcmv3.HttpConnectionManager) (*table, error) {
	t := &table{port: l.GetAddress().GetSocketAddress().GetPortValue()}
	switch {
	case hcm.GetStripAnyHostPort():
		t.stripPort = stripAny
	case hcm.GetStripMatchingHostPort():
		t.stripPort = stripMatching
	}

	ups := map[string]*upstream{}
	for name, cl := range c.clusters {
		u := &upstream{name: name, connectTimeout: 5 * time.Second, tls: cl.GetTransportSocket() != nil}
		if d := cl.GetConnectTimeout(); d != nil {
			u.connectTimeout = d.AsDuration()
		}
		cla := cl.GetLoadAssignment()
		if cl.GetType() == clusterv3.Cluster_EDS {
			cla = c.endpoints[edsName(name, cl)]
		}
		u.endpoints = healthyEndpoints(cla)
		ups[name] = u
	}

	var rc *routev3.RouteConfiguration
	switch {
	case hcm.GetRds() != nil:
		rc = c.routes[hcm.GetRds().GetRouteConfigName()]
	case hcm.GetRouteConfig() != nil:
		rc = hcm.GetRouteConfig()
	}
	t.vhosts.exact = map[string]*vhost{}
	if rc == nil {
		return t, nil
	}
	t.headers = toHeaderOps(rc.RequestHeadersToAdd, rc.RequestHeadersToRemove)
	t.mostSpecificWins = rc.GetMostSpecificHeaderMutationsWins()
	for _, v := range rc.VirtualHosts {
		vh := &vhost{name: v.Name, headers: toHeaderOps(v.RequestHeadersToAdd, v.RequestHeadersToRemove)}
		for _, r := range v.Routes {
			rt, err := buildRoute(r, ups)
			if err != nil {
				return nil, fmt.Errorf("virtual host %s: %w", v.Name, err)
			}
			if rt != nil {
				vh.routes = append(vh.routes, rt)
			}
		}
		for _, d := range v.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.vhosts.any != nil {
					return nil, fmt.Errorf("duplicate domain %q", d)
				}
				t.vhosts.any = vh
			case strings.HasPrefix(d, "*"):
				t.vhosts.suffix = append(t.vhosts.suffix, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.vhosts.prefix = append(t.vhosts.prefix, wildcard{d[:len(d)-1], vh})
			default:
				if _, dup := t.vhosts.exact[d]; dup {
					// Envoy rejects such a route configuration too.
					return nil, fmt.Errorf("duplicate domain %q", d)
				}
				t.vhosts.exact[d] = vh
			}
		}
	}
	longestFirst := func(w []wildcard) {
		sort.SliceStable(w, func(i, j int) bool { return len(w[i].part) > len(w[j].part) })
	}
	longestFirst(t.vhosts.suffix)
	longestFirst(t.vhosts.prefix)
	return t, nil
}

// buildRoute returns nil for routes the gateway cannot evaluate (header or
// query matchers, other actions); kiln emits none of those, and skipping
// them is safer than matching too much.
func buildRoute(r *routev3.Route, ups map[string]*upstream) (*route, error) {
	m := r.GetMatch()
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetGrpc() != nil {
		return nil, nil
	}
	caseSensitive := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(s string) string {
		if caseSensitive {
			return s
		}
		return strings.ToLower(s)
	}
	rt := &route{name: r.Name, headers: toHeaderOps(r.RequestHeadersToAdd, r.RequestHeadersToRemove)}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		prefix := fold(p.Prefix)
		rt.match = func(path string) bool { return strings.HasPrefix(fold(path), prefix) }
	case *routev3.RouteMatch_Path:
		want := fold(p.Path)
		rt.match = func(path string) bool { return fold(path) == want }
	case *routev3.RouteMatch_PathSeparatedPrefix:
		prefix := fold(p.PathSeparatedPrefix)
		rt.match = func(path string) bool {
			path = fold(path)
			return path == prefix || strings.HasPrefix(path, prefix+"/")
		}
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		rt.match = re.MatchString
	default:
		return nil, nil
	}

	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		ra := a.Route
		rt.timeout = 15 * time.Second // Envoy's default route timeout
		rt.hostRewrite = ra.GetHostRewriteLiteral()
		if ra.GetTimeout() != nil {
			rt.timeout = ra.GetTimeout().AsDuration()
		}
		switch cs := ra.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			rt.clusters = []weightedCluster{{name: cs.Cluster, weight: 1, upstream: ups[cs.Cluster]}}
		case *routev3.RouteAction_WeightedClusters:
			for _, c := range cs.WeightedClusters.GetClusters() {
				rt.clusters = append(rt.clusters, weightedCluster{
					name:     c.Name,
					weight:   c.GetWeight().GetValue(),
					headers:  toHeaderOps(c.RequestHeadersToAdd, c.RequestHeadersToRemove),
					upstream: ups[c.Name],
				})
			}
		default:
			return nil, nil
		}
		for _, c := range rt.clusters {
			rt.total += c.weight
		}
	case *routev3.Route_Redirect:
		rt.redirect = toRedirect(a.Redirect)
	case *routev3.Route_DirectResponse:
		rt.direct = &directResponse{status: int(a.DirectResponse.GetStatus()), body: a.DirectResponse.GetBody().GetInlineString()}
	default:
		return nil, nil
	}
	return rt, nil
}

// healthyEndpoints returns the endpoints of the lowest priority that has
// any, like Envoy without health checks.
func healthyEndpoints(cla *endpointv3.ClusterLoadAssignment) []string {
	byPriority := map[uint32][]string{}
	for _, l := range cla.GetEndpoints() {
		for _, ep := range l.LbEndpoints {
			switch ep.GetHealthStatus() {
			case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT:
				continue
			}
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			byPriority[l.Priority] = append(byPriority[l.Priority], net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	best := ^uint32(0)
	for p := range byPriority {
		best = min(best, p)
	}
	return byPriority[best]
}

// envoyOperator finds an Envoy command operator (%DOWNSTREAM_REMOTE_ADDRESS%,
// %REQ(X-FORWARDED-PROTO)%) in a header value.
var envoyOperator = regexp.MustCompile(`%[A-Z_]+(\([^)]*\))?%`)

func toHeaderOps(add []*corev3.HeaderValueOption, remove []string) headerOps {
	ops := headerOps{remove: remove}
	for _, h := range add {
		if envoyOperator.MatchString(h.GetHeader().GetValue()) {
			// A value computed by Envoy's command operators, such as
			// the Forwarded element: the gateway adds its own.
			continue
		}
		op := headerOp{key: h.GetHeader().GetKey(), value: h.GetHeader().GetValue(), action: h.GetAppendAction()}
		// The deprecated append flag wins when set, as in Envoy.
		if a := h.GetAppend(); a != nil {
			op.action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if a.GetValue() {
				op.action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		ops.add = append(ops.add, op)
	}
	return ops
}

func (ops headerOps) apply(h http.Header) {
	for _, k := range ops.remove {
		h.Del(k)
	}
	for _, op := range ops.add {
		switch op.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(op.key, op.value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if _, ok := h[http.CanonicalHeaderKey(op.key)]; !ok {
				h.Set(op.key, op.value)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if _, ok := h[http.CanonicalHeaderKey(op.key)]; ok {
				h.Set(op.key, op.value)
			}
		default:
			h.Set(op.key, op.value)
		}
	}
}

// vhostFor finds the virtual host for a Host header.
func (t *table) vhostFor(host string) *vhost {
	host = strings.ToLower(host)
	h, port := splitHostPort(host)
	switch t.stripPort {
	case stripAny:
		host = h
	case stripMatching:
		if port == strconv.Itoa(int(t.port)) {
			host = h
		}
	}
	if vh := t.vhosts.lookup(host); vh != nil {
		return vh
	}
	if h != host {
		return t.vhosts.lookup(h)
	}
	return nil
}

func (ix *vhostIndex) lookup(host string) *vhost {
	if vh, ok := ix.exact[host]; ok {
		return vh
	}
	for _, w := range ix.suffix {
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range ix.prefix {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return ix.any
}

// splitHostPort splits "host:port" and "[v6]:port"; a host without a port
// comes back whole.
func splitHostPort(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.HasSuffix(hostport, "]") {
		return hostport, ""
	}
	host, port = hostport[:i], hostport[i+1:]
	if strings.Count(host, ":") > 0 && !strings.HasPrefix(host, "[") {
		return hostport, "" // a bare IPv6 address
	}
	return host, port
}

func (vh *vhost) routeFor(path string) *route {
	for _, r := range vh.routes {
		if r.match(path) {
			return r
		}
	}
	return nil
}

// pick chooses a weighted cluster at random by weight, as Envoy does.
func (r *route) pick() *weightedCluster {
	if len(r.clusters) == 1 {
		return &r.clusters[0]
	}
	if r.total == 0 {
		return nil
	}
	n := rand.Uint32N(r.total)
	for i := range r.clusters {
		if n < r.clusters[i].weight {
			return &r.clusters[i]
		}
		n -= r.clusters[i].weight
	}
	return nil
}
