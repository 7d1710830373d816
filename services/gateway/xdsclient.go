package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
)

// The type URLs the gateway subscribes to, in the order Envoy does.
const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeSecret   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// incompleteGrace bounds how long an incomplete configuration (say an EDS
// assignment that never arrives) is held back; Envoy's
// initial_fetch_timeout plays the same role.
const incompleteGrace = 5 * time.Second

// subscription is the protocol state of one resource type.
type subscription struct {
	version string   // last accepted version_info
	nonce   string   // nonce of the last response
	names   []string // nil = wildcard (LDS, CDS)
}

// xdsClient is the state of the ADS conversation. It is owned by the
// runXDS goroutine and survives reconnects (the table keeps serving).
type xdsClient struct {
	g    *Gateway
	node *corev3.Node
	cfg  config
	subs map[string]*subscription

	// pendingSince is when the config first became incomplete; zero when
	// it is complete.
	pendingSince time.Time
}

func (g *Gateway) runXDS(ctx context.Context) error {
	nodeID := g.cfg.NodeID
	if nodeID == "" {
		nodeID, _ = os.Hostname()
	}
	creds := g.cfg.XDSCreds
	if creds == nil {
		creds = grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	// One connection per xds replica; a stream that fails moves on to the
	// next replica at once, and only a round in which every replica
	// failed waits, at most maxXDSBackoff, so the edge resumes within
	// about a second of any replica being reachable.
	var clients []discoveryv3.AggregatedDiscoveryServiceClient
	for _, addr := range g.cfg.XDSAddresses {
		conn, err := grpc.NewClient(addr, creds,
			// A silent xds server must be noticed, or the edge would keep
			// an old config forever.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
			// gRPC's own reconnection backoff must not stack on ours.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.Config{BaseDelay: 100 * time.Millisecond,
				Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxXDSBackoff}, MinConnectTimeout: 5 * time.Second}),
		)
		if err != nil {
			return fmt.Errorf("xds client %s: %w", addr, err)
		}
		defer conn.Close()
		clients = append(clients, discoveryv3.NewAggregatedDiscoveryServiceClient(conn))
	}
	c := &xdsClient{
		g:    g,
		node: &corev3.Node{Id: nodeID, Cluster: "kiln-gateway", UserAgentName: "kiln-gateway"},
		cfg: config{
			listeners: map[string]*listenerv3.Listener{},
			routes:    map[string]*routev3.RouteConfiguration{},
			clusters:  map[string]*clusterv3.Cluster{},
			endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
			secrets:   map[string]*tlsv3.Secret{},
		},
	}
	backoff := 100 * time.Millisecond
	idx, failed := 0, 0 // the replica in use; replicas failed in a row
	for {
		start := time.Now()
		err := c.stream(ctx, clients[idx])
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if time.Since(start) > 30*time.Second {
			backoff, failed = 100*time.Millisecond, 0
		}
		failed++
		from := g.cfg.XDSAddresses[idx]
		idx = (idx + 1) % len(clients)
		if failed%len(clients) != 0 {
			g.log.Warn("xds stream ended, trying the next xds server", "error", err, "xds", from, "next", g.cfg.XDSAddresses[idx])
			continue
		}
		// Jitter keeps a fleet of edges from reconnecting in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		g.log.Warn("xds stream ended, reconnecting", "error", err, "xds", from, "next", g.cfg.XDSAddresses[idx], "backoff", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxXDSBackoff)
	}
}

// maxXDSBackoff caps the wait between rounds of reconnection attempts.
const maxXDSBackoff = time.Second

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// stream runs one ADS stream until it fails.
func (c *xdsClient) stream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open ads stream: %w", err)
	}
	// A new stream starts from scratch: versions from another xds replica
	// mean nothing here, and asking afresh costs one full push.
	routes, clusters, secrets := c.cfg.wants()
	c.subs = map[string]*subscription{
		typeCluster:  {},
		typeEndpoint: {names: clusters},
		typeListener: {},
		typeRoute:    {names: routes},
		typeSecret:   {names: secrets},
	}
	for _, typ := range []string{typeCluster, typeEndpoint, typeListener, typeRoute, typeSecret} {
		sub := c.subs[typ]
		if (typ == typeEndpoint || typ == typeRoute || typ == typeSecret) && len(sub.names) == 0 {
			continue // nothing to ask yet; LDS and CDS will say what
		}
		if err := c.send(s, typ, nil); err != nil {
			return err
		}
	}

	type recvResult struct {
		resp *discoveryv3.DiscoveryResponse
		err  error
	}
	recvC := make(chan recvResult, 1)
	go func() {
		for {
			resp, err := s.Recv()
			select {
			case recvC <- recvResult{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var graceC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-graceC:
			graceC = nil
			if c.pendingSince.IsZero() {
				continue // completed meanwhile
			}
			if err := c.publish(true); err != nil {
				return err
			}
		case rr := <-recvC:
			if rr.err != nil {
				return fmt.Errorf("ads recv: %w", rr.err)
			}
			if err := c.handle(s, rr.resp); err != nil {
				return err
			}
			if err := c.publish(false); err != nil {
				return err
			}
			if !c.pendingSince.IsZero() && graceC == nil {
				graceC = time.After(time.Until(c.pendingSince.Add(incompleteGrace)))
			}
		}
	}
}

// send requests typ with the subscription's state; nack, when set, is the
// reason the last response was rejected.
func (c *xdsClient) send(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typ string, nack error) error {
	sub := c.subs[typ]
	req := &discoveryv3.DiscoveryRequest{
		Node:          c.node,
		TypeUrl:       typ,
		VersionInfo:   sub.version,
		ResponseNonce: sub.nonce,
		ResourceNames: sub.names,
	}
	if nack != nil {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	if err := s.Send(req); err != nil {
		return fmt.Errorf("ads send %s: %w", typ, err)
	}
	return nil
}

// handle validates one response, ACKs or NACKs it, and updates the RDS
// and EDS subscriptions it implies.
func (c *xdsClient) handle(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, resp *discoveryv3.DiscoveryResponse) error {
	sub, ok := c.subs[resp.TypeUrl]
	if !ok {
		return nil // a type we never asked for
	}
	sub.nonce = resp.Nonce
	next := c.cfg // copy of the maps' headers; the changed one is replaced
	items, err := decode(resp)
	if err == nil && (resp.TypeUrl == typeRoute || resp.TypeUrl == typeEndpoint || resp.TypeUrl == typeSecret) {
		// Keep only what was asked for: an empty SOTW subscription can be
		// read as a wildcard by the server.
		for name := range items {
			if _, found := slices.BinarySearch(sub.names, name); !found {
				delete(items, name)
			}
		}
	}
	if err == nil {
		switch resp.TypeUrl {
		case typeListener:
			next.listeners = castMap[*listenerv3.Listener](items)
		case typeRoute:
			next.routes = castMap[*routev3.RouteConfiguration](items)
		case typeCluster:
			next.clusters = castMap[*clusterv3.Cluster](items)
		case typeEndpoint:
			next.endpoints = castMap[*endpointv3.ClusterLoadAssignment](items)
		case typeSecret:
			next.secrets = castMap[*tlsv3.Secret](items)
		}
		// Reject what the gateway could not serve, as Envoy rejects what
		// it cannot load. An incomplete config is fine: more is coming.
		if _, _, lerr := next.httpListener(); lerr != nil {
			err = lerr
		} else if l, _, _ := next.httpListener(); l != nil {
			_, err = buildState(&next)
		}
	}
	if err != nil {
		c.g.log.Warn("rejecting xds response", "type_url", resp.TypeUrl, "version", resp.VersionInfo, "error", err)
		return c.send(s, resp.TypeUrl, err)
	}
	c.cfg = next
	sub.version = resp.VersionInfo
	if err := c.send(s, resp.TypeUrl, nil); err != nil {
		return err
	}

	// New listeners or clusters change what RDS and EDS must ask for.
	routes, clusters, secrets := c.cfg.wants()
	for typ, names := range map[string][]string{typeRoute: routes, typeEndpoint: clusters, typeSecret: secrets} {
		if s2 := c.subs[typ]; !slices.Equal(s2.names, names) {
			s2.names = names
			c.cfg.dropUnwanted(typ, names)
			if err := c.send(s, typ, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish applies the config if it is complete, or if force and it has at
// least a listener.
func (c *xdsClient) publish(force bool) error {
	complete := c.cfg.complete()
	if !complete && !force {
		if c.pendingSince.IsZero() {
			c.pendingSince = time.Now()
		}
		return nil
	}
	if !complete {
		if l, _, _ := c.cfg.httpListener(); l == nil {
			c.pendingSince = time.Time{}
			return nil
		}
		c.g.log.Warn("applying incomplete xds config after grace period")
	}
	c.pendingSince = time.Time{}
	st, err := buildState(&c.cfg)
	if err != nil {
		// Every accepted response built, so this would be a bug.
		c.g.log.Error("build routing table", "error", err)
		return nil
	}
	if err := c.g.apply(st); err != nil {
		return &fatalError{err}
	}
	versions := make(map[string]string, len(c.subs))
	for typ, sub := range c.subs {
		versions[typ] = sub.version
	}
	c.g.applied.Store(&applied{cfg: c.cfg, versions: versions, at: time.Now()})
	c.g.markReady()
	return nil
}

func (c *config) dropUnwanted(typ string, names []string) {
	switch typ {
	case typeRoute:
		c.routes = keepNamed(c.routes, names)
	case typeEndpoint:
		c.endpoints = keepNamed(c.endpoints, names)
	case typeSecret:
		c.secrets = keepNamed(c.secrets, names)
	}
}

// keepNamed returns the entries of m whose name is in sorted names.
func keepNamed[T any](m map[string]T, names []string) map[string]T {
	out := make(map[string]T, len(names))
	for n, v := range m {
		if _, found := slices.BinarySearch(names, n); found {
			out[n] = v
		}
	}
	return out
}

type validator interface{ ValidateAll() error }

// decode unpacks and validates every resource of a response, keyed by name.
func decode(resp *discoveryv3.DiscoveryResponse) (map[string]proto.Message, error) {
	out := make(map[string]proto.Message, len(resp.Resources))
	for _, a := range resp.Resources {
		if a.TypeUrl != resp.TypeUrl {
			return nil, fmt.Errorf("resource of type %s in a %s response", a.TypeUrl, resp.TypeUrl)
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("unmarshal %s: %w", a.TypeUrl, err)
		}
		if v, ok := m.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				return nil, err
			}
		}
		var name string
		switch r := m.(type) {
		case *listenerv3.Listener:
			name = r.Name
		case *routev3.RouteConfiguration:
			name = r.Name
		case *clusterv3.Cluster:
			name = r.Name
		case *endpointv3.ClusterLoadAssignment:
			name = r.ClusterName
		case *tlsv3.Secret:
			name = r.Name
		default:
			return nil, fmt.Errorf("unexpected resource type %s", a.TypeUrl)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("duplicate resource %q", name)
		}
		out[name] = m
	}
	return out, nil
}

func castMap[T proto.Message](in map[string]proto.Message) map[string]T {
	out := make(map[string]T, len(in))
	for k, v := range in {
		out[k] = v.(T)
	}
	return out
}
