package gateway

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// publicListener is the listener PortOverride applies to: kiln's plain
// HTTP listener (xds.ListenerName).
const publicListener = "kiln-http"

// listenerSpec is one listener the gateway serves: a port, the one route
// configuration all its filter chains name, and TLS when its chains
// terminate it.
type listenerSpec struct {
	name  string
	port  uint32
	route string // RDS name
	tls   *tlsSpec
}

// tlsSpec picks a certificate by SNI the way Envoy picks a filter chain:
// an exact server name, then the longest wildcard (*.example.com), then
// the default filter chain.
type tlsSpec struct {
	exact    map[string]string // server name -> SDS secret name
	wildcard []wildcardSecret  // longest suffix first
	fallback string            // default chain's secret; "" = none
}

type wildcardSecret struct {
	suffix string // ".example.com"
	secret string
}

func (t *tlsSpec) secretFor(serverName string) string {
	serverName = strings.ToLower(strings.TrimSuffix(serverName, "."))
	if s, ok := t.exact[serverName]; ok {
		return s
	}
	for _, w := range t.wildcard {
		if strings.HasSuffix(serverName, w.suffix) && len(serverName) > len(w.suffix) {
			return w.secret
		}
	}
	return t.fallback
}

func (t *tlsSpec) secrets() []string {
	var out []string
	for _, s := range t.exact {
		out = append(out, s)
	}
	for _, w := range t.wildcard {
		out = append(out, w.secret)
	}
	if t.fallback != "" {
		out = append(out, t.fallback)
	}
	return out
}

// chainHCM returns the HttpConnectionManager of a filter chain, or nil.
func chainHCM(fc *listenerv3.FilterChain) (*hcmv3.HttpConnectionManager, error) {
	if fc == nil {
		return nil, nil
	}
	for _, f := range fc.Filters {
		hcm := &hcmv3.HttpConnectionManager{}
		if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(hcm) {
			continue
		}
		if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
			return nil, err
		}
		return hcm, nil
	}
	return nil, nil
}

// chainSecret returns the SDS secret a chain's TLS transport names, "" for
// a plain chain.
func chainSecret(fc *listenerv3.FilterChain) (string, error) {
	ts := fc.GetTransportSocket()
	if ts == nil {
		return "", nil
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if ts.GetTypedConfig() == nil || !ts.GetTypedConfig().MessageIs(ctx) {
		return "", fmt.Errorf("filter chain %q: unsupported transport socket %q", fc.Name, ts.Name)
	}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return "", err
	}
	sds := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
	if len(sds) != 1 || sds[0].GetName() == "" {
		return "", fmt.Errorf("filter chain %q: the gateway needs exactly one SDS certificate per chain", fc.Name)
	}
	return sds[0].GetName(), nil
}

// listenerSpecs lists every listener with an HttpConnectionManager, by
// name. The gateway runs one routing table per listener, so all chains of a
// listener must name the same route configuration, and a listener's chains
// are either all TLS or all plain.
func (c *config) listenerSpecs() ([]listenerSpec, error) {
	names := make([]string, 0, len(c.listeners))
	for n := range c.listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []listenerSpec
	for _, n := range names {
		l := c.listeners[n]
		spec := listenerSpec{name: n, port: l.GetAddress().GetSocketAddress().GetPortValue()}
		chains := append([]*listenerv3.FilterChain(nil), l.FilterChains...)
		if l.DefaultFilterChain != nil {
			chains = append(chains, l.DefaultFilterChain)
		}
		plain, tlsChains := 0, 0
		ts := &tlsSpec{exact: map[string]string{}}
		for i, fc := range chains {
			hcm, err := chainHCM(fc)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", n, err)
			}
			if hcm == nil {
				continue
			}
			if hcm.GetRds() == nil {
				return nil, fmt.Errorf("listener %s: the gateway needs route configurations over RDS", n)
			}
			if spec.route != "" && spec.route != hcm.GetRds().GetRouteConfigName() {
				return nil, fmt.Errorf("listener %s: filter chains name different route configurations", n)
			}
			spec.route = hcm.GetRds().GetRouteConfigName()
			secret, err := chainSecret(fc)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", n, err)
			}
			if secret == "" {
				plain++
				continue
			}
			tlsChains++
			isDefault := l.DefaultFilterChain != nil && i == len(chains)-1
			names := fc.GetFilterChainMatch().GetServerNames()
			switch {
			case isDefault || len(names) == 0:
				if ts.fallback != "" {
					return nil, fmt.Errorf("listener %s: two filter chains without server names", n)
				}
				ts.fallback = secret
			default:
				for _, sn := range names {
					sn = strings.ToLower(sn)
					if strings.HasPrefix(sn, "*.") {
						ts.wildcard = append(ts.wildcard, wildcardSecret{suffix: sn[1:], secret: secret})
						continue
					}
					if _, dup := ts.exact[sn]; dup {
						return nil, fmt.Errorf("listener %s: server name %q in two filter chains", n, sn)
					}
					ts.exact[sn] = secret
				}
			}
		}
		if spec.route == "" {
			continue
		}
		if plain > 0 && tlsChains > 0 {
			return nil, fmt.Errorf("listener %s: mixes TLS and plain filter chains", n)
		}
		if tlsChains > 0 {
			sort.SliceStable(ts.wildcard, func(i, j int) bool { return len(ts.wildcard[i].suffix) > len(ts.wildcard[j].suffix) })
			spec.tls = ts
		}
		out = append(out, spec)
	}
	return out, nil
}

// edgeState is one immutable gateway configuration: a routing table and
// (for TLS listeners) certificates per listener.
type edgeState struct {
	specs  map[string]listenerSpec
	tables map[string]*table
	certs  map[string]*tls.Certificate // by SDS secret name
}

// buildState compiles the raw config. It fails only on configuration the
// gateway cannot honour, which the caller NACKs.
func buildState(c *config) (*edgeState, error) {
	specs, err := c.listenerSpecs()
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("no listener with an http_connection_manager")
	}
	st := &edgeState{specs: map[string]listenerSpec{}, tables: map[string]*table{}, certs: map[string]*tls.Certificate{}}
	for _, sp := range specs {
		l := c.listeners[sp.name]
		hcm, _ := chainHCM(firstHCMChain(l))
		t, err := buildListenerTable(c, l, hcm)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", sp.name, err)
		}
		st.specs[sp.name] = sp
		st.tables[sp.name] = t
		if sp.tls == nil {
			continue
		}
		for _, name := range sp.tls.secrets() {
			s := c.secrets[name]
			if s == nil {
				continue // not arrived yet; complete() waits for it
			}
			tc := s.GetTlsCertificate()
			if tc == nil {
				return nil, fmt.Errorf("secret %s: not a TLS certificate", name)
			}
			cert, err := tls.X509KeyPair(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
			if err != nil {
				return nil, fmt.Errorf("secret %s: %w", name, err)
			}
			st.certs[name] = &cert
		}
	}
	return st, nil
}

func firstHCMChain(l *listenerv3.Listener) *listenerv3.FilterChain {
	for _, fc := range append(append([]*listenerv3.FilterChain(nil), l.FilterChains...), l.DefaultFilterChain) {
		if hcm, _ := chainHCM(fc); hcm != nil {
			return fc
		}
	}
	return nil
}

// redirectAction is Envoy's RedirectAction, as far as kiln emits it.
type redirectAction struct {
	https bool
	port  uint32
	code  int
}

func toRedirect(ra *routev3.RedirectAction) *redirectAction {
	r := &redirectAction{https: ra.GetHttpsRedirect() || ra.GetSchemeRedirect() == "https", port: ra.GetPortRedirect(), code: http.StatusMovedPermanently}
	switch ra.GetResponseCode() {
	case routev3.RedirectAction_FOUND:
		r.code = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		r.code = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		r.code = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		r.code = http.StatusPermanentRedirect
	}
	return r
}

// location is where a redirect sends r: Envoy keeps host, path and query,
// swaps the scheme, and swaps the port for port_redirect (dropping it when
// it is the new scheme's default).
func (ra *redirectAction) location(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if ra.https {
		scheme = "https"
	}
	host, port := splitHostPort(r.Host)
	if ra.port != 0 {
		port = strconv.Itoa(int(ra.port))
	} else if ra.https && port == "80" {
		port = ""
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	return scheme + "://" + host + r.URL.RequestURI()
}
