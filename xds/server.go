package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
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
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// snapshotKey is the one cache key every edge maps to (see doc.go).
const snapshotKey = "kiln"

type oneSnapshot struct{}

func (oneSnapshot) ID(*corev3.Node) string { return snapshotKey }

// Server is the `kilnd xds` role: store watches in, ADS out.
type Server struct {
	st    store.Store
	opts  Options
	log   *slog.Logger
	cache cachev3.SnapshotCache
	// cfg is the live cluster config (config-network http-protocol).
	cfg *liveconfig.Watcher

	// Owned by the goroutine running loop.
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
		st:    st,
		opts:  opts,
		log:   log,
		cache: cachev3.NewSnapshotCache(true, oneSnapshot{}, cacheLogger{log}),
		cfg:   liveconfig.NewWatcher(st, log),
		last:  map[resourcev3.Type]typeState{},
	}
}

// Run serves ADS (and the separate LDS/RDS/CDS/EDS services) on lis until
// ctx ends. It returns nil on cancellation, or the gRPC serve error, once
// every goroutine it started has stopped. opts carry the transport
// credentials and caller check (internal/mtls with Callers); none serves
// plain gRPC to anyone.
func (s *Server) Run(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	g, ctx := errgroup.WithContext(ctx)

	gs := grpc.NewServer(append([]grpc.ServerOption{
		// Edges hold one stream for their whole life; let their keepalive
		// pings through so dead edges are noticed.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}, opts...)...)
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

	v := s.newView()
	g.Go(func() error { v.mirror.Run(ctx, s.st, s.log); return nil })
	g.Go(func() error { return s.cfg.Run(ctx) })
	g.Go(func() error { return s.loop(ctx, v) })
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil {
			return fmt.Errorf("serve ADS: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		// Stop, not GracefulStop: ADS streams never end on their own.
		gs.Stop()
		return nil
	})
	s.log.Info("serving ADS", "address", lis.Addr().String())
	return g.Wait()
}

// view is the routing state the server follows. Only the goroutine running
// loop touches it.
type view struct {
	routes     *store.Cache[servingv1.Route]
	revisions  *store.Cache[revisionTimeout]
	instances  *store.Cache[cluster.Instance]
	scale      *store.Cache[cluster.Scale]
	activators *store.Cache[cluster.Activator]
	mappings   *store.Cache[v1beta1.DomainMapping]
	secrets    *store.Cache[secretEntry]
	mirror     *store.Mirror
}

func (s *Server) newView() *view {
	v := &view{
		routes:     store.NewCache(store.RegistryListPrefix(servingv1.Group, servingv1.ResourceRoutes, ""), store.JSON[servingv1.Route], s.log),
		revisions:  store.NewCache(store.RevisionsPrefix, decodeRevisionTimeout, s.log),
		instances:  store.NewCache(store.InstancePrefix, store.JSON[cluster.Instance], s.log),
		scale:      store.NewCache(store.ScalePrefix, store.JSON[cluster.Scale], s.log),
		activators: store.NewCache(store.ActivatorsPrefix, store.JSON[cluster.Activator], s.log),
		mappings:   store.NewCache(store.RegistryListPrefix(v1beta1.Group, v1beta1.ResourceDomainMapping, ""), store.JSON[v1beta1.DomainMapping], s.log),
		secrets:    store.NewCache(store.SecretsPrefix, secretDecoder(s.opts.SecretKeys), s.log),
	}
	v.mirror = store.NewMirror(v.routes, v.revisions, v.instances, v.scale, v.activators, v.mappings, v.secrets)
	return v
}

// revisionTimeout is all the server keeps of a Revision.
type revisionTimeout struct {
	cluster string
	timeout time.Duration
}

func decodeRevisionTimeout(kv store.KV) (revisionTimeout, error) {
	r, err := store.JSON[servingv1.Revision](kv)
	if err != nil {
		return revisionTimeout{}, err
	}
	rt := revisionTimeout{cluster: ClusterName(r.Metadata.Namespace, r.Metadata.Name)}
	if r.Spec.TimeoutSeconds != nil && *r.Spec.TimeoutSeconds > 0 {
		rt.timeout = time.Duration(*r.Spec.TimeoutSeconds) * time.Second
	}
	return rt, nil
}

// secretEntry is all the server keeps of a secret. Secrets carry private
// keys: xds is their only reader besides the apiserver, and it never logs
// their data.
type secretEntry struct {
	name string
	tls  TLSSecret
}

// secretDecoder opens secrets with keys (nil: plain text only). A value it
// cannot open is dropped by the cache with a warning naming the key, so one
// bad secret does not stop the others being served.
func secretDecoder(keys *encryption.Keys) store.Decoder[secretEntry] {
	return func(kv store.KV) (secretEntry, error) {
		sec, err := secret.Decode(kv, keys)
		if err != nil {
			return secretEntry{}, err
		}
		if sec.Type != corev1.SecretTypeTLS {
			return secretEntry{}, fmt.Errorf("secret %s/%s is of type %q, not %s: not served to edges",
				sec.Metadata.Namespace, sec.Metadata.Name, sec.Type, corev1.SecretTypeTLS)
		}
		return secretEntry{
			name: SecretName(sec.Metadata.Namespace, sec.Metadata.Name),
			tls:  TLSSecret{Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]},
		}, nil
	}
}

// loop owns v and the snapshot: every change (a feed, or the live config)
// rebuilds at once, with no debounce since endpoint changes are on the
// cold-start path; feeds already waiting are applied first, so a burst
// costs one build.
func (s *Server) loop(ctx context.Context, v *view) error {
	cfgChanged := s.cfg.Changed()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-v.mirror.Feeds():
			v.mirror.Apply(f)
		case <-cfgChanged:
			cfgChanged = s.cfg.Changed()
		}
	drain:
		for {
			select {
			case f := <-v.mirror.Feeds():
				v.mirror.Apply(f)
			default:
				break drain
			}
		}
		in, ok := s.input(v)
		if !ok {
			continue
		}
		if err := s.publish(ctx, in); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("publish snapshot", "error", err)
		}
	}
}

// input gathers the followed state, or reports false until every prefix
// has been listed and the config read once.
func (s *Server) input(v *view) (Input, bool) {
	if !v.mirror.Synced() {
		return Input{}, false
	}
	select {
	case <-s.cfg.Synced():
	default:
		return Input{}, false
	}
	in := Input{
		Routes:          v.routes.Values(),
		Instances:       v.instances.Values(),
		DomainMappings:  v.mappings.Values(),
		Timeouts:        map[string]time.Duration{},
		ActivatorInPath: map[string]bool{},
		Secrets:         map[string]TLSSecret{},
		HTTPProtocol:    s.cfg.Current().Network().HTTPProtocol,
	}
	for _, sc := range v.scale.Values() {
		if sc.ActivatorInPath {
			in.ActivatorInPath[ClusterName(sc.Namespace, sc.Revision)] = true
		}
	}
	for _, a := range v.activators.Values() {
		if a.Address != "" {
			in.Activators = append(in.Activators, a.Address)
		}
	}
	slices.Sort(in.Activators)
	in.Activators = slices.Compact(in.Activators)
	for _, rt := range v.revisions.Values() {
		if rt.timeout > 0 {
			in.Timeouts[rt.cluster] = rt.timeout
		}
	}
	for _, e := range v.secrets.Values() {
		in.Secrets[e.name] = e.tls
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
