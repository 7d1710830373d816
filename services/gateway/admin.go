package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	// Typed configs kiln puts inside listeners: protojson must resolve
	// every Any it prints.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
)

// applied is the configuration the gateway currently serves, kept for the
// admin listener's /config_dump.
type applied struct {
	cfg      config            // maps are replaced, never mutated, after publish
	versions map[string]string // by type URL
	at       time.Time
}

// serveAdmin runs Envoy's admin endpoints the gateway can honour on lis
// until ctx ends: /ready and /config_dump.
func (g *Gateway) serveAdmin(ctx context.Context, lis net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", g.adminReady)
	mux.HandleFunc("GET /config_dump", g.adminConfigDump)
	// The admin API answers short GETs only.
	srv := &http.Server{Handler: http.MaxBytesHandler(mux, 1<<16), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		g.log.Error("admin listener", "error", err)
	}
}

// adminReady answers like Envoy's /ready: 200 LIVE once the first complete
// configuration is served, 503 PRE_INITIALIZING before.
func (g *Gateway) adminReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	select {
	case <-g.ready:
		_, _ = w.Write([]byte("LIVE\n"))
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("PRE_INITIALIZING\n"))
	}
}

func (g *Gateway) adminConfigDump(w http.ResponseWriter, _ *http.Request) {
	b, err := configDumpJSON(g.applied.Load())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// configDump renders a in Envoy's admin.v3.ConfigDump shape: one dump per
// resource type, in Envoy's order (clusters, endpoints, listeners, routes,
// secrets). Secrets are listed by name only: the private key (and the
// certificate) never leave the gateway through its admin port.
func configDump(a *applied) (*adminv3.ConfigDump, error) {
	dump := &adminv3.ConfigDump{}
	if a == nil {
		return dump, nil // nothing applied yet, as Envoy before its first config
	}
	at := timestamppb.New(a.at)
	add := func(m proto.Message) error {
		x, err := anypb.New(m)
		if err != nil {
			return err
		}
		dump.Configs = append(dump.Configs, x)
		return nil
	}
	pack := func(m proto.Message) *anypb.Any { x, _ := anypb.New(m); return x }

	clusters := &adminv3.ClustersConfigDump{VersionInfo: a.versions[typeCluster]}
	for _, n := range sortedKeys(a.cfg.clusters) {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: a.versions[typeCluster], Cluster: pack(a.cfg.clusters[n]), LastUpdated: at})
	}
	endpoints := &adminv3.EndpointsConfigDump{}
	for _, n := range sortedKeys(a.cfg.endpoints) {
		endpoints.DynamicEndpointConfigs = append(endpoints.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: a.versions[typeEndpoint], EndpointConfig: pack(a.cfg.endpoints[n]), LastUpdated: at})
	}
	listeners := &adminv3.ListenersConfigDump{VersionInfo: a.versions[typeListener]}
	for _, n := range sortedKeys(a.cfg.listeners) {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: n,
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
				VersionInfo: a.versions[typeListener], Listener: pack(a.cfg.listeners[n]), LastUpdated: at},
		})
	}
	routes := &adminv3.RoutesConfigDump{}
	for _, n := range sortedKeys(a.cfg.routes) {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: a.versions[typeRoute], RouteConfig: pack(a.cfg.routes[n]), LastUpdated: at})
	}
	secrets := &adminv3.SecretsConfigDump{}
	for _, n := range sortedKeys(a.cfg.secrets) {
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: n, VersionInfo: a.versions[typeSecret], LastUpdated: at, Secret: pack(&tlsv3.Secret{Name: n})})
	}
	for _, m := range []proto.Message{clusters, endpoints, listeners, routes, secrets} {
		if err := add(m); err != nil {
			return nil, err
		}
	}
	return dump, nil
}

// configDumpJSON is configDump as indented JSON with Envoy's snake_case
// field names. It is re-indented with encoding/json because protojson
// varies its whitespace on purpose, and `grep '"key": "value"'` on the
// dump is how users check what reached the edge.
func configDumpJSON(a *applied) ([]byte, error) {
	dump, err := configDump(a)
	if err != nil {
		return nil, err
	}
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(dump)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
