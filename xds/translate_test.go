package xds

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// Fixture builders.

type routeOpt func(*servingv1.Route)

func route(ns, name, url string, opts ...routeOpt) servingv1.Route {
	r := servingv1.Route{Metadata: metav1.ObjectMeta{Namespace: ns, Name: name}}
	r.Status.URL = url
	for _, o := range opts {
		o(&r)
	}
	return r
}

func withTraffic(rev string, percent int64) routeOpt {
	return func(r *servingv1.Route) {
		r.Status.Traffic = append(r.Status.Traffic, servingv1.TrafficTarget{RevisionName: rev, Percent: &percent})
	}
}

func withTag(tag, rev string, percent int64, url string) routeOpt {
	return func(r *servingv1.Route) {
		r.Status.Traffic = append(r.Status.Traffic, servingv1.TrafficTarget{Tag: tag, RevisionName: rev, Percent: &percent, URL: url})
	}
}

func inst(ns, rev, id, endpoint string, ready bool) cluster.Instance {
	return cluster.Instance{Instance: id, Node: "n1", Namespace: ns, Revision: rev, Ready: ready, Endpoint: endpoint, Phase: cluster.PhaseRunning}
}

// validateAll runs Envoy's proto validation on every resource, including
// the HttpConnectionManager packed inside the listener (ValidateAll does
// not look inside Any).
func validateAll(t *testing.T, res Resources) {
	t.Helper()
	for _, l := range res.Listeners {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("listener %s: %v", l.Name, err)
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				hcm := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					t.Fatalf("unpack hcm: %v", err)
				}
				if err := hcm.ValidateAll(); err != nil {
					t.Errorf("hcm: %v", err)
				}
			}
		}
	}
	for _, r := range res.Routes {
		if err := r.ValidateAll(); err != nil {
			t.Errorf("route config %s: %v", r.Name, err)
		}
	}
	for _, c := range res.Clusters {
		if err := c.ValidateAll(); err != nil {
			t.Errorf("cluster %s: %v", c.Name, err)
		}
	}
	for _, e := range res.Endpoints {
		if err := e.ValidateAll(); err != nil {
			t.Errorf("cla %s: %v", e.ClusterName, err)
		}
	}
}

// summary flattens the resources into comparable strings.
type summary struct {
	vhosts    map[string]string // vhost name -> "domains|cluster=weight,..|timeout"
	clusters  []string
	endpoints map[string][]string
}

func summarize(t *testing.T, res Resources) summary {
	t.Helper()
	s := summary{vhosts: map[string]string{}, endpoints: map[string][]string{}}
	var rc *routev3.RouteConfiguration
	for _, r := range res.Routes {
		if r.Name == RouteConfigName {
			rc = r
		}
	}
	if rc == nil {
		t.Fatalf("no route config %q", RouteConfigName)
	}
	for _, vh := range rc.VirtualHosts {
		var parts []string
		rt := vh.Routes[0]
		if rt.GetMatch().GetPrefix() != "/" {
			t.Errorf("vhost %s: match %v, want prefix /", vh.Name, rt.GetMatch())
		}
		for _, c := range rt.GetRoute().GetWeightedClusters().GetClusters() {
			parts = append(parts, c.Name+"="+strconv.Itoa(int(c.Weight.GetValue())))
			hdr := map[string]string{}
			for _, h := range c.RequestHeadersToAdd {
				hdr[h.Header.Key] = h.Header.Value
			}
			ns, rev, _ := strings.Cut(c.Name, "/")
			if hdr[HeaderRevision] != rev || hdr[HeaderNamespace] != ns {
				t.Errorf("vhost %s cluster %s: headers %v", vh.Name, c.Name, hdr)
			}
		}
		s.vhosts[vh.Name] = strings.Join(vh.Domains, ",") + "|" + strings.Join(parts, ",") + "|" + rt.GetRoute().GetTimeout().AsDuration().String()
	}
	for _, c := range res.Clusters {
		s.clusters = append(s.clusters, c.Name)
	}
	for _, e := range res.Endpoints {
		var eps []string
		for _, l := range e.Endpoints {
			for _, ep := range l.LbEndpoints {
				eps = append(eps, endpointKey(ep))
			}
		}
		s.endpoints[e.ClusterName] = eps
	}
	return s
}

func TestTranslate(t *testing.T) {
	const host = "hello.default.127.0.0.1.sslip.io"
	tests := []struct {
		name     string
		in       Input
		opts     Options
		vhosts   map[string]string
		clusters []string
		eps      map[string][]string
		warnings int
	}{{
		name: "single revision",
		in: Input{
			Routes:    []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 100))},
			Instances: []cluster.Instance{inst("default", "hello-00001", "i1", "10.0.0.5:8012", true)},
		},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=100|5m10s"},
		clusters: []string{"default/hello-00001"},
		eps:      map[string][]string{"default/hello-00001": {"10.0.0.5:8012"}},
	}, {
		name: "50/50 split, only ready instances, per-revision timeout",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 50), withTraffic("hello-00002", 50))},
			Instances: []cluster.Instance{
				inst("default", "hello-00001", "i1", "10.0.0.5:8012", true),
				inst("default", "hello-00001", "i2", "10.0.0.6:8012", false),
				inst("default", "hello-00002", "i3", "localhost:9001", true),
				inst("default", "hello-00002", "i4", "10.0.0.4:9002", true),
			},
			Timeouts: map[string]time.Duration{"default/hello-00002": 600 * time.Second},
		},
		opts:     Options{HTTPPort: 80},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":80," + host + ":8443|default/hello-00001=50,default/hello-00002=50|10m10s"},
		clusters: []string{"default/hello-00001", "default/hello-00002"},
		eps: map[string][]string{
			"default/hello-00001": {"10.0.0.5:8012"},
			"default/hello-00002": {"10.0.0.4:9002", "127.0.0.1:9001"},
		},
	}, {
		name: "tags incl. a 0% tag",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host,
				withTag("current", "hello-00002", 100, "http://current-hello.default.127.0.0.1.sslip.io"),
				withTag("next", "hello-00003", 0, "http://next-hello.default.127.0.0.1.sslip.io"),
			)},
		},
		vhosts: map[string]string{
			"default/hello":             host + "," + host + ":8080," + host + ":8443|default/hello-00002=100|5m10s",
			"default/hello/tag/current": "current-hello.default.127.0.0.1.sslip.io,current-hello.default.127.0.0.1.sslip.io:8080,current-hello.default.127.0.0.1.sslip.io:8443|default/hello-00002=100|5m10s",
			"default/hello/tag/next":    "next-hello.default.127.0.0.1.sslip.io,next-hello.default.127.0.0.1.sslip.io:8080,next-hello.default.127.0.0.1.sslip.io:8443|default/hello-00003=100|5m10s",
		},
		clusters: []string{"default/hello-00002", "default/hello-00003"},
		eps:      map[string][]string{"default/hello-00002": nil, "default/hello-00003": nil},
	}, {
		name: "no instances, no activator: empty assignment",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 100))},
		},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=100|5m10s"},
		clusters: []string{"default/hello-00001"},
		eps:      map[string][]string{"default/hello-00001": nil},
	}, {
		name: "no instances, activator: proxy mode",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 60), withTraffic("hello-00002", 40))},
			Instances: []cluster.Instance{
				inst("default", "hello-00002", "i1", "10.0.0.9:8012", true),
			},
		},
		opts:     Options{ActivatorAddress: ":8012"},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=60,default/hello-00002=40|5m10s"},
		clusters: []string{"default/hello-00001", "default/hello-00002"},
		eps: map[string][]string{
			"default/hello-00001": {"127.0.0.1:8012"},
			"default/hello-00002": {"10.0.0.9:8012"},
		},
	}, {
		name: "activator in path by scale record, even with ready instances",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 50), withTraffic("hello-00002", 50))},
			Instances: []cluster.Instance{
				inst("default", "hello-00001", "i1", "10.0.0.8:8012", true),
				inst("default", "hello-00002", "i2", "10.0.0.9:8012", true),
			},
			ActivatorInPath: map[string]bool{"default/hello-00001": true, "default/hello-00002": false},
		},
		opts:     Options{ActivatorAddress: "10.0.0.1:8012"},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=50,default/hello-00002=50|5m10s"},
		clusters: []string{"default/hello-00001", "default/hello-00002"},
		eps: map[string][]string{
			"default/hello-00001": {"10.0.0.1:8012"},
			"default/hello-00002": {"10.0.0.9:8012"},
		},
	}, {
		name: "two registered activators: both are endpoints in proxy mode, the flag's address unused",
		in: Input{
			Routes: []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 50), withTraffic("hello-00002", 50))},
			Instances: []cluster.Instance{
				inst("default", "hello-00002", "i2", "10.0.0.9:8012", true),
			},
			Activators: []string{"10.0.0.3:8012", "10.0.0.2:8012"},
		},
		opts:     Options{ActivatorAddress: "10.0.0.1:8012"},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=50,default/hello-00002=50|5m10s"},
		clusters: []string{"default/hello-00001", "default/hello-00002"},
		eps: map[string][]string{
			"default/hello-00001": {"10.0.0.2:8012", "10.0.0.3:8012"},
			"default/hello-00002": {"10.0.0.9:8012"},
		},
	}, {
		name: "activator in path but no activator configured: instances serve",
		in: Input{
			Routes:          []servingv1.Route{route("default", "hello", "http://"+host, withTraffic("hello-00001", 100))},
			Instances:       []cluster.Instance{inst("default", "hello-00001", "i1", "10.0.0.8:8012", true)},
			ActivatorInPath: map[string]bool{"default/hello-00001": true},
		},
		vhosts:   map[string]string{"default/hello": host + "," + host + ":8080," + host + ":8443|default/hello-00001=100|5m10s"},
		clusters: []string{"default/hello-00001"},
		eps:      map[string][]string{"default/hello-00001": {"10.0.0.8:8012"}},
	}, {
		name: "multiple routes and namespaces, instances of unrouted revisions ignored",
		in: Input{
			Routes: []servingv1.Route{
				route("team-b", "api", "http://api.team-b.example.com", withTraffic("api-00007", 100)),
				route("default", "hello", "http://"+host+":8081", withTraffic("hello-00001", 100)),
				// The same revision name in another namespace is another cluster.
				route("team-b", "hello", "http://hello.team-b.example.com", withTraffic("hello-00001", 100)),
			},
			Instances: []cluster.Instance{
				inst("team-b", "api-00007", "i1", "10.1.0.1:8012", true),
				inst("team-b", "hello-00001", "i2", "10.1.0.2:8012", true),
				inst("default", "hello-00001", "i3", "10.1.0.3:8012", true),
				inst("default", "orphan-00001", "i4", "10.1.0.4:8012", true),
			},
		},
		vhosts: map[string]string{
			"default/hello": host + "," + host + ":8080," + host + ":8443," + host + ":8081|default/hello-00001=100|5m10s",
			"team-b/api":    "api.team-b.example.com,api.team-b.example.com:8080,api.team-b.example.com:8443|team-b/api-00007=100|5m10s",
			"team-b/hello":  "hello.team-b.example.com,hello.team-b.example.com:8080,hello.team-b.example.com:8443|team-b/hello-00001=100|5m10s",
		},
		clusters: []string{"default/hello-00001", "team-b/api-00007", "team-b/hello-00001"},
		eps: map[string][]string{
			"default/hello-00001": {"10.1.0.3:8012"},
			"team-b/api-00007":    {"10.1.0.1:8012"},
			"team-b/hello-00001":  {"10.1.0.2:8012"},
		},
	}, {
		name: "conflicting host and bad endpoint are left out with warnings",
		in: Input{
			Routes: []servingv1.Route{
				route("a", "one", "http://same.example.com", withTraffic("one-00001", 100)),
				route("b", "two", "http://same.example.com", withTraffic("two-00001", 100)),
				route("a", "pending", "http://pending.example.com"), // no traffic yet
			},
			Instances: []cluster.Instance{inst("a", "one-00001", "i1", "node1.internal:8012", true)},
		},
		vhosts: map[string]string{"a/one": "same.example.com,same.example.com:8080,same.example.com:8443|a/one-00001=100|5m10s"},
		// b/two keeps its cluster-local host on the internal listener.
		clusters: []string{"a/one-00001", "b/two-00001"},
		eps:      map[string][]string{"a/one-00001": nil, "b/two-00001": nil},
		warnings: 2,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Translate(tc.in, tc.opts)
			validateAll(t, res)
			s := summarize(t, res)
			if len(s.vhosts) != len(tc.vhosts) {
				t.Errorf("vhosts: got %v, want %v", s.vhosts, tc.vhosts)
			}
			for name, want := range tc.vhosts {
				if got := s.vhosts[name]; got != want {
					t.Errorf("vhost %s:\n got %s\nwant %s", name, got, want)
				}
			}
			if !slices.Equal(s.clusters, tc.clusters) {
				t.Errorf("clusters: got %v, want %v", s.clusters, tc.clusters)
			}
			if len(s.endpoints) != len(tc.eps) {
				t.Errorf("assignments: got %v, want %v", s.endpoints, tc.eps)
			}
			for name, want := range tc.eps {
				if got, ok := s.endpoints[name]; !ok || !slices.Equal(got, want) {
					t.Errorf("endpoints of %s: got %v (present %v), want %v", name, got, ok, want)
				}
			}
			if len(res.Warnings) != tc.warnings {
				t.Errorf("warnings: got %q, want %d", res.Warnings, tc.warnings)
			}
			// kiln-http and kiln-internal; kiln-https only with certificates.
			if l := res.Listeners; len(l) != 2 || l[0].Name != ListenerName || l[1].Name != InternalListenerName {
				t.Fatalf("listeners: %v", l)
			}
			wantPort := tc.opts.HTTPPort
			if wantPort == 0 {
				wantPort = DefaultHTTPPort
			}
			if p := res.Listeners[0].GetAddress().GetSocketAddress().GetPortValue(); p != wantPort {
				t.Errorf("listener port %d, want %d", p, wantPort)
			}
			hcm := &hcmv3.HttpConnectionManager{}
			if err := res.Listeners[0].FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			if hcm.GetRds().GetRouteConfigName() != RouteConfigName || hcm.GetRds().GetConfigSource().GetAds() == nil {
				t.Errorf("hcm rds: %v", hcm.GetRds())
			}
			for _, c := range res.Clusters {
				if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil || c.GetType().String() != "EDS" {
					t.Errorf("cluster %s is not EDS over ADS", c.Name)
				}
			}
		})
	}
}

func TestTranslateIsDeterministic(t *testing.T) {
	in := Input{
		Routes: []servingv1.Route{
			route("b", "x", "http://x.b.example.com", withTraffic("x-1", 30), withTraffic("x-2", 70)),
			route("a", "y", "http://y.a.example.com", withTraffic("y-1", 100)),
		},
		Instances: []cluster.Instance{
			inst("b", "x-1", "i1", "10.0.0.2:1", true), inst("b", "x-1", "i2", "10.0.0.1:1", true),
		},
	}
	a := Translate(in, Options{})
	slices.Reverse(in.Routes)
	slices.Reverse(in.Instances)
	b := Translate(in, Options{})
	if !sameResources(a, b) {
		t.Fatal("input order changed the output")
	}
}

// Every revision route retries, on another host, a request that never
// reached an upstream, and an idempotent one (GET, HEAD, OPTIONS, TRACE)
// also when the upstream broke the connection before answering; every
// revision cluster ejects an endpoint at its first refused connection but
// never for its 5xx answers.
func TestConnectFailuresRetriedAndEjected(t *testing.T) {
	in := Input{Routes: []servingv1.Route{
		route("default", "hello", "http://hello.default.example.com", withTraffic("hello-00001", 100)),
	}}
	res := Translate(in, Options{})
	validateAll(t, res)
	routes, idempotent := 0, 0
	for _, rc := range res.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				ra := rt.GetRoute()
				if ra == nil {
					continue
				}
				routes++
				rp := ra.GetRetryPolicy()
				want := "connect-failure,refused-stream,reset-before-request"
				if hm := rt.GetMatch().GetHeaders(); len(hm) > 0 {
					if len(hm) != 1 || hm[0].GetName() != ":method" || hm[0].GetStringMatch().GetSafeRegex().GetRegex() != "GET|HEAD|OPTIONS|TRACE" {
						t.Errorf("route %s header matchers %v", rt.GetName(), hm)
					}
					want = "connect-failure,refused-stream,reset"
					idempotent++
				}
				if rp.GetRetryOn() != want || rp.GetNumRetries().GetValue() == 0 ||
					len(rp.GetRetryHostPredicate()) != 1 || rp.GetRetryHostPredicate()[0].GetName() != "envoy.retry_host_predicates.previous_hosts" {
					t.Errorf("route %s retry policy %v", rt.GetName(), rp)
				}
			}
		}
	}
	if routes == 0 || 2*idempotent != routes {
		t.Fatalf("%d route actions, %d of them for idempotent methods: want one of those per route", routes, idempotent)
	}
	for _, c := range res.Clusters {
		od := c.GetOutlierDetection()
		if od.GetConsecutiveLocalOriginFailure().GetValue() != 1 || !od.GetSplitExternalLocalOriginErrors() ||
			od.GetEnforcingConsecutive_5Xx() == nil || od.GetEnforcingConsecutive_5Xx().GetValue() != 0 {
			t.Errorf("cluster %s outlier detection %v", c.GetName(), od)
		}
	}
}
