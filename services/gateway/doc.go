// Package gateway is kiln's HTTP edge for installs without Envoy: an xDS
// client of the kilnd xds role that routes requests the way Envoy would for
// the configuration kiln emits.
//
// It owns the edge's routing state (an immutable value behind an
// atomic.Pointer, swapped whole, so a request never sees half a config):
// one routing table per listener named by LDS, and the certificates of TLS
// listeners, received over SDS and picked per handshake by SNI (exact
// server name, then wildcard, then the default filter chain), so a rotated
// secret applies to the next connection. It binds every listener LDS names
// and proxies to queue-proxies or the activator. Besides weighted clusters,
// routes may redirect (https_redirect, port_redirect, as Envoy) and rewrite
// the upstream Host (host_rewrite_literal).
//
// Routing follows Envoy: Host header → virtual host (exact domain, then
// suffix and prefix wildcards, longest first, then "*"; else an empty 404),
// first matching route, a weighted cluster picked at random by weight (its
// request headers added; client-sent copies of kiln's internal headers are
// dropped first, and most_specific_header_mutations_wins is honoured), a
// round-robin endpoint, the route timeout (504
// "upstream request timeout"), and 503 "no healthy upstream" for a cluster
// without endpoints. As a gateway-only leniency, a Host whose port form is
// not listed falls back to the host without its port.
//
// Like Envoy in ADS mode, a new configuration is applied only once it is
// complete (every route configuration the listener names and every
// assignment an EDS cluster names has arrived), or after a grace period,
// so a new revision never gets a transient 503 while its endpoints are in
// flight.
//
// With Config.AdminListen it also serves an Envoy-style admin listener
// (admin.go): /ready (LIVE once the first configuration is served) and
// /config_dump, the applied listeners, route configurations, clusters,
// endpoints and secret names in Envoy's admin.v3.ConfigDump shape. Secret
// contents never appear there.
//
// Between roles it speaks mutual TLS when given its certificate
// (Config.XDSCreds, Config.UpstreamTLS): to the xds server, and to every
// cluster whose xDS definition carries an UpstreamTlsContext, where it
// presents its own certificate in place of the Envoy edge's static secret.
// Its public listeners are for end users and never ask for one.
//
// It must never read or write the store: everything it knows comes over
// xDS, so an Envoy edge and a gateway edge can never disagree.
package gateway
