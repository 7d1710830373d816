package xds

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// testEdge is a minimal ADS client that behaves like Envoy: wildcard LDS
// and CDS, then RDS and EDS for the names those reference; it ACKs every
// response and records what it holds.
type testEdge struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node

	mu        sync.Mutex
	resources map[string]map[string]proto.Message // type -> name -> resource
	responses map[string]int                      // type -> responses received
	names     map[string][]string                 // type -> subscribed names
}

func dialEdge(t *testing.T, ctx context.Context, addr, nodeID string) *testEdge {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEdge{
		t: t, stream: stream, node: &corev3.Node{Id: nodeID, Cluster: "edges"},
		resources: map[string]map[string]proto.Message{},
		responses: map[string]int{},
		names:     map[string][]string{},
	}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		e.send(&discoveryv3.DiscoveryRequest{TypeUrl: typ})
	}
	go e.recvLoop()
	return e
}

func (e *testEdge) send(req *discoveryv3.DiscoveryRequest) {
	req.Node = e.node
	if err := e.stream.Send(req); err != nil {
		e.t.Logf("send: %v", err)
	}
}

func (e *testEdge) recvLoop() {
	for {
		resp, err := e.stream.Recv()
		if err != nil {
			return
		}
		got := map[string]proto.Message{}
		var refs []string
		for _, a := range resp.Resources {
			m, err := a.UnmarshalNew()
			if err != nil {
				e.t.Errorf("unmarshal %s: %v", a.TypeUrl, err)
				continue
			}
			if v, ok := m.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					e.t.Errorf("invalid %s: %v", a.TypeUrl, err)
				}
			}
			switch r := m.(type) {
			case *listenerv3.Listener:
				got[r.Name] = r
				hcm := &hcmv3.HttpConnectionManager{}
				if err := r.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
					e.t.Errorf("hcm: %v", err)
				}
				refs = append(refs, hcm.GetRds().GetRouteConfigName())
			case *routev3.RouteConfiguration:
				got[r.Name] = r
			case *clusterv3.Cluster:
				got[r.Name] = r
				refs = append(refs, r.GetEdsClusterConfig().GetServiceName())
			case *endpointv3.ClusterLoadAssignment:
				got[r.ClusterName] = r
			}
		}
		e.mu.Lock()
		e.resources[resp.TypeUrl] = got
		e.responses[resp.TypeUrl]++
		e.mu.Unlock()
		e.send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: e.subscribed(resp.TypeUrl)})
		// Like Envoy: new clusters or listeners change the EDS or RDS
		// subscription.
		var sub string
		switch resp.TypeUrl {
		case resourcev3.ClusterType:
			sub = resourcev3.EndpointType
		case resourcev3.ListenerType:
			sub = resourcev3.RouteType
		}
		if sub != "" {
			slices.Sort(refs)
			e.mu.Lock()
			old := e.names[sub]
			e.names[sub] = refs
			e.mu.Unlock()
			if !slices.Equal(old, refs) {
				e.send(&discoveryv3.DiscoveryRequest{TypeUrl: sub, ResourceNames: refs})
			}
		}
	}
}

func (e *testEdge) subscribed(typ string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.names[typ]
}

// waitFor waits until cond holds.
func (e *testEdge) waitFor(what string, cond func(e *testEdge) bool) {
	e.t.Helper()
	defer func() {
		if e.t.Failed() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.t.Logf("edge %s holds %v", e.node.Id, e.resources)
		}
	}()
	testenv.Eventually(e.t, fmt.Sprintf("edge %s: %s", e.node.Id, what), 0, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return cond(e)
	})
}

// endpointsOf is called with e.mu held.
func (e *testEdge) endpointsOf(cluster string) []string {
	cla, ok := e.resources[resourcev3.EndpointType][cluster].(*endpointv3.ClusterLoadAssignment)
	if !ok {
		return []string{"<missing>"}
	}
	var out []string
	for _, l := range cla.Endpoints {
		for _, ep := range l.LbEndpoints {
			out = append(out, endpointKey(ep))
		}
	}
	slices.Sort(out)
	return out
}

func (e *testEdge) weightsOf(vhost string) map[string]uint32 {
	rc, ok := e.resources[resourcev3.RouteType][RouteConfigName].(*routev3.RouteConfiguration)
	if !ok {
		return nil
	}
	for _, vh := range rc.VirtualHosts {
		if vh.Name == vhost {
			w := map[string]uint32{}
			for _, c := range vh.Routes[0].GetRoute().GetWeightedClusters().GetClusters() {
				w[c.Name] = c.Weight.GetValue()
			}
			return w
		}
	}
	return nil
}

func TestServerOverEtcd(t *testing.T) {
	st := testenv.StartEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	routeKey := store.RegistryKey("serving.knative.dev", "routes", "default", "hello")
	rt := route("default", "hello", "http://hello.default.127.0.0.1.sslip.io", withTraffic("hello-00001", 100))
	testenv.PutJSON(t, st, routeKey, rt)
	timeout := int64(30)
	testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "revisions", "default", "hello-00001"),
		servingv1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "hello-00001"}, Spec: servingv1.RevisionSpec{TimeoutSeconds: &timeout}})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(st, Options{ActivatorAddress: "127.0.0.1:8012"}, testenv.Logger())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()

	edge := dialEdge(t, ctx, lis.Addr().String(), "edge-1")
	edge.waitFor("initial config with the activator as endpoint", func(e *testEdge) bool {
		_, hasListener := e.resources[resourcev3.ListenerType][ListenerName]
		return hasListener && e.weightsOf("default/hello")["default/hello-00001"] == 100 &&
			slices.Equal(e.endpointsOf("default/hello-00001"), []string{"127.0.0.1:8012"})
	})
	edge.mu.Lock()
	rc := edge.resources[resourcev3.RouteType][RouteConfigName].(*routev3.RouteConfiguration)
	if got := rc.VirtualHosts[0].Routes[0].GetRoute().GetTimeout().AsDuration(); got != 30*time.Second+DefaultRouteTimeoutGrace {
		t.Errorf("route timeout %v, want the revision's 30s and the grace", got)
	}
	before := map[string]int{}
	for k, v := range edge.responses {
		before[k] = v
	}
	edge.mu.Unlock()

	// A ready instance replaces the activator; only EDS is pushed.
	instKey := store.InstanceKey("node-a", "hello-00001-abc")
	start := time.Now()
	testenv.PutJSON(t, st, instKey, cluster.Instance{Instance: "hello-00001-abc", Node: "node-a", Namespace: "default", Revision: "hello-00001", Ready: true, Endpoint: "10.0.0.7:8013"})
	edge.waitFor("instance endpoint", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"10.0.0.7:8013"})
	})
	t.Logf("endpoint propagation store put -> edge: %v", time.Since(start))
	edge.mu.Lock()
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType, resourcev3.RouteType} {
		if edge.responses[typ] != before[typ] {
			t.Errorf("%s was pushed again (%d -> %d) for an endpoint-only change", typ, before[typ], edge.responses[typ])
		}
	}
	edge.mu.Unlock()

	// A second edge with another node ID gets the same snapshot.
	edge2 := dialEdge(t, ctx, lis.Addr().String(), "edge-2")
	edge2.waitFor("same config on a second node", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"10.0.0.7:8013"}) &&
			e.weightsOf("default/hello")["default/hello-00001"] == 100
	})

	// The autoscaler puts the activator in the path (too little burst
	// capacity) and takes it out again: the endpoints follow scale/.
	scaleKey := store.ScaleKey("default", "hello-00001")
	testenv.PutJSON(t, st, scaleKey, cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 1, ActivatorInPath: true})
	edge.waitFor("activator in path by scale record", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"127.0.0.1:8012"})
	})
	// Registered activators replace the flag's address; one that goes
	// (its lease ended) leaves the endpoints.
	testenv.PutJSON(t, st, store.ActivatorKey("act-2"), cluster.Activator{Identity: "act-2", Address: "10.0.0.12:8012"})
	testenv.PutJSON(t, st, store.ActivatorKey("act-1"), cluster.Activator{Identity: "act-1", Address: "10.0.0.11:8012"})
	edge.waitFor("both registered activators in path", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"10.0.0.11:8012", "10.0.0.12:8012"})
	})
	if err := st.Delete(ctx, store.ActivatorKey("act-2")); err != nil {
		t.Fatal(err)
	}
	edge.waitFor("the live activator only", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"10.0.0.11:8012"})
	})
	if err := st.Delete(ctx, store.ActivatorKey("act-1")); err != nil {
		t.Fatal(err)
	}
	edge.waitFor("the flag's address once none is registered", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"127.0.0.1:8012"})
	})
	testenv.PutJSON(t, st, scaleKey, cluster.Scale{Namespace: "default", Revision: "hello-00001", Desired: 1})
	edge.waitFor("instances again once the activator leaves the path", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"10.0.0.7:8013"})
	})

	// Splitting traffic adds a cluster; the edge re-subscribes EDS and gets
	// the new revision's (activator) endpoint.
	rt = route("default", "hello", "http://hello.default.127.0.0.1.sslip.io", withTraffic("hello-00001", 50), withTraffic("hello-00002", 50))
	testenv.PutJSON(t, st, routeKey, rt)
	for _, e := range []*testEdge{edge, edge2} {
		e.waitFor("50/50 split", func(e *testEdge) bool {
			w := e.weightsOf("default/hello")
			return w["default/hello-00001"] == 50 && w["default/hello-00002"] == 50 &&
				slices.Equal(e.endpointsOf("default/hello-00002"), []string{"127.0.0.1:8012"})
		})
	}

	// The instance vanishes (lease expiry looks the same): back to the activator.
	if err := st.Delete(ctx, instKey); err != nil {
		t.Fatal(err)
	}
	edge.waitFor("activator after instance loss", func(e *testEdge) bool {
		return slices.Equal(e.endpointsOf("default/hello-00001"), []string{"127.0.0.1:8012"})
	})

	// Removing the route drops its virtual host and clusters.
	if err := st.Delete(ctx, routeKey); err != nil {
		t.Fatal(err)
	}
	edge.waitFor("route removed", func(e *testEdge) bool {
		return e.weightsOf("default/hello") == nil && len(e.resources[resourcev3.ClusterType]) == 0
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
