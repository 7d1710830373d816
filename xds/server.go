package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/store"
)

// snapshotKey is the one cache key every edge maps to (see doc.go).
const snapshotKey = "kiln"

type oneSnapshot struct{}

func (oneSnapshot) ID(*corev3.Node) string { return snapshotKey }

// Prefixes the server watches.
var (
	routesPrefix     = store.RegistryListPrefix("serving.knative.dev", "routes", "")
	revisionsPrefix  = store.RegistryListPrefix("serving.knative.dev", "revisions", "")
	instancesPrefix  = store.InstancePrefix
	scalePrefix      = store.ScalePrefix
	activatorsPrefix = store.ActivatorsPrefix
)

// Server is the `kilnd xds` role: store watches in, ADS out.
type Server struct {
	st    store.Store
	opts  Options
	log   *slog.Logger
	cache cachev3.SnapshotCache
	// cfg is the live cluster config (config-network http-protocol).
	cfg *liveconfig.Watcher

	// kick wakes the builder; its buffer of one coalesces bursts: events
	// arriving while a build runs cause exactly one more build.
	kick chan struct{}

	mu     sync.Mutex
	state  map[string]map[string]any // prefix -> key -> decoded value
	listed map[string]bool           // prefix -> listed at least once

	// Owned by the builder goroutine.
	version  int64
	last     map[resourcev3.Type]typeState
	warnings []string
}

type typeState struct {
	version string
	items   []types.Resource
}

// NewServer returns a server that publishes st's routing state with opts.
func NewServer(st store.Store, opts Options, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "xds")
	return &Server{
		st:     st,
		opts:   opts,
		log:    log,
		cache:  cachev3.NewSnapshotCache(true, oneSnapshot{}, cacheLogger{log}),
		cfg:    liveconfig.NewWatcher(st, log),
		kick:   make(chan struct{}, 1),
		state:  map[string]map[string]any{},
		listed: map[string]bool{},
		last:   map[resourcev3.Type]typeState{},
	}
}

// Run serves ADS (and the separate LDS/RDS/CDS/EDS services) on lis until
// ctx ends. It returns nil on cancellation, or the gRPC serve error.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	gs := grpc.NewServer(
		// Edges hold one stream for their whole life; let their keepalive
		// pings through so dead edges are noticed.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	xs := serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			s.log.Debug("stream open", "stream", id, "type_url", typeURL)
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			s.log.Debug("stream closed", "stream", id, "node", node.GetId())
		},
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			if req.ErrorDetail != nil {
				s.log.Warn("edge rejected config", "stream", id, "node", req.GetNode().GetId(),
					"type_url", req.TypeUrl, "version", req.VersionInfo, "error", req.ErrorDetail.GetMessage())
			}
			return nil
		},
	})
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xs)

	var wg sync.WaitGroup
	for prefix, decode := range map[string]decoder{
		routesPrefix:     decodeRoute,
		revisionsPrefix:  decodeRevisionTimeout,
		instancesPrefix:  decodeInstance,
		scalePrefix:      decodeScale,
		activatorsPrefix: decodeActivator,
		// edgewatch.go: DomainMappings and TLS secrets.
		domainMappingsPrefix: decodeDomainMapping,
		secretsPrefix:        decodeSecret,
	} {
		wg.Go(func() { s.watch(ctx, prefix, decode) })
	}
	wg.Go(func() { s.runConfig(ctx) })
	wg.Go(func() { s.build(ctx) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	s.log.Info("serving ADS", "address", lis.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve ADS: %w", err)
	}
	cancel()
	// Stop, not GracefulStop: ADS streams never end on their own.
	gs.Stop()
	wg.Wait()
	return err
}

type decoder func(value []byte) (any, error)

func decodeRoute(b []byte) (any, error) {
	var r servingv1.Route
	err := json.Unmarshal(b, &r)
	return r, err
}

func decodeInstance(b []byte) (any, error) {
	var i cluster.Instance
	err := json.Unmarshal(b, &i)
	return i, err
}

func decodeActivator(b []byte) (any, error) {
	var a cluster.Activator
	err := json.Unmarshal(b, &a)
	return a, err
}

func decodeScale(b []byte) (any, error) {
	var sc cluster.Scale
	err := json.Unmarshal(b, &sc)
	return sc, err
}

// revisionTimeout is all the server keeps of a Revision.
type revisionTimeout struct {
	cluster string
	timeout time.Duration
}

func decodeRevisionTimeout(b []byte) (any, error) {
	var r servingv1.Revision
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	rt := revisionTimeout{cluster: ClusterName(r.Metadata.Namespace, r.Metadata.Name)}
	if r.Spec.TimeoutSeconds != nil && *r.Spec.TimeoutSeconds > 0 {
		rt.timeout = time.Duration(*r.Spec.TimeoutSeconds) * time.Second
	}
	return rt, nil
}

// watch mirrors one prefix into s.state through store.Follow (list, then
// watch from the list's revision + 1, re-listing after any watch error), so
// no event is ever missed.
func (s *Server) watch(ctx context.Context, prefix string, decode decoder) {
	log := s.log.With("prefix", prefix)
	feeds := make(chan store.Feed, 16)
	go store.Follow(ctx, s.st, 0, prefix, feeds, log)
	for {
		var f store.Feed
		select {
		case <-ctx.Done():
			return
		case f = <-feeds:
		}
		s.mu.Lock()
		if f.Reset {
			s.state[prefix] = make(map[string]any, len(f.Puts))
			s.listed[prefix] = true
		}
		for _, k := range f.Dels {
			delete(s.state[prefix], k)
		}
		for _, kv := range f.Puts {
			if v, err := decode(kv.Value); err != nil {
				log.Warn("skipping undecodable value", "key", kv.Key, "error", err)
				delete(s.state[prefix], kv.Key)
			} else {
				s.state[prefix][kv.Key] = v
			}
		}
		s.mu.Unlock()
		s.poke()
	}
}

func (s *Server) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// build owns the snapshot: each kick rebuilds at once (no debounce, since
// endpoint changes are on the cold-start path); kicks arriving meanwhile
// collapse into one more build.
func (s *Server) build(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		in, ok := s.input()
		if !ok {
			continue
		}
		if err := s.publish(ctx, in); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("publish snapshot", "error", err)
		}
	}
}

// input copies the mirrored state, or reports false until every prefix has
// been listed once.
func (s *Server) input() (Input, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range []string{routesPrefix, revisionsPrefix, instancesPrefix, scalePrefix, activatorsPrefix} {
		if !s.listed[p] {
			return Input{}, false
		}
	}
	in := Input{Timeouts: map[string]time.Duration{}, ActivatorInPath: map[string]bool{}}
	if !s.edgeInput(&in) {
		return Input{}, false
	}
	for _, v := range s.state[scalePrefix] {
		if sc := v.(cluster.Scale); sc.ActivatorInPath {
			in.ActivatorInPath[ClusterName(sc.Namespace, sc.Revision)] = true
		}
	}
	for _, v := range s.state[routesPrefix] {
		in.Routes = append(in.Routes, v.(servingv1.Route))
	}
	for _, v := range s.state[activatorsPrefix] {
		if a := v.(cluster.Activator); a.Address != "" {
			in.Activators = append(in.Activators, a.Address)
		}
	}
	slices.Sort(in.Activators)
	in.Activators = slices.Compact(in.Activators)
	for _, v := range s.state[instancesPrefix] {
		in.Instances = append(in.Instances, v.(cluster.Instance))
	}
	for _, v := range s.state[revisionsPrefix] {
		if rt := v.(revisionTimeout); rt.timeout > 0 {
			in.Timeouts[rt.cluster] = rt.timeout
		}
	}
	return in, true
}

// publish translates in and sets the snapshot if anything changed. A type
// keeps its version while its content is unchanged, so edges only receive
// what changed.
func (s *Server) publish(ctx context.Context, in Input) error {
	start := time.Now()
	res := Translate(in, s.opts)
	if !slices.Equal(res.Warnings, s.warnings) {
		for _, w := range res.Warnings {
			s.log.Warn("translation left something out", "detail", w)
		}
		s.warnings = res.Warnings
	}

	next := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: toResources(res.Listeners),
		resourcev3.RouteType:    toResources(res.Routes),
		resourcev3.ClusterType:  toResources(res.Clusters),
		resourcev3.EndpointType: toResources(res.Endpoints),
		resourcev3.SecretType:   toResources(res.Secrets),
	}
	changed := false
	for typ, items := range next {
		if prev, ok := s.last[typ]; !ok || !equalResources(prev.items, items) {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	s.version++
	snap := &cachev3.Snapshot{}
	var changedTypes []string
	for typ, items := range next {
		ts, ok := s.last[typ]
		if !ok || !equalResources(ts.items, items) {
			ts = typeState{version: strconv.FormatInt(s.version, 10), items: items}
			changedTypes = append(changedTypes, typ)
		}
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(ts.version, ts.items)
		s.last[typ] = ts
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("snapshot %d inconsistent: %w", s.version, err)
	}
	if err := s.cache.SetSnapshot(ctx, snapshotKey, snap); err != nil {
		return fmt.Errorf("set snapshot %d: %w", s.version, err)
	}
	slices.Sort(changedTypes)
	s.log.Debug("published snapshot", "version", s.version, "changed", changedTypes,
		"routes", len(in.Routes), "clusters", len(res.Clusters), "took", time.Since(start))
	return nil
}

func toResources[T types.Resource](items []T) []types.Resource {
	out := make([]types.Resource, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// equalResources compares two name-sorted resource lists.
func equalResources(a, b []types.Resource) bool {
	return slices.EqualFunc(a, b, func(x, y types.Resource) bool { return proto.Equal(x, y) })
}

// sameResources reports whether two translations are identical.
func sameResources(a, b Resources) bool {
	return equalResources(toResources(a.Listeners), toResources(b.Listeners)) &&
		equalResources(toResources(a.Routes), toResources(b.Routes)) &&
		equalResources(toResources(a.Clusters), toResources(b.Clusters)) &&
		equalResources(toResources(a.Endpoints), toResources(b.Endpoints))
}

// cacheLogger adapts go-control-plane's logger to slog. Its warnings are
// routine in ADS mode (an EDS request naming fewer clusters than the
// snapshot waits for the edge's next request), so they go to debug.
type cacheLogger struct{ log *slog.Logger }

func (l cacheLogger) Debugf(format string, args ...any) { l.debug(format, args) }
func (l cacheLogger) Infof(format string, args ...any)  { l.debug(format, args) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.debug(format, args) }

// debug formats only when debug is on: the cache logs every response.
func (l cacheLogger) debug(format string, args []any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l cacheLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }
