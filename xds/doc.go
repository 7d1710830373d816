// Package xds turns kiln's routing state into Envoy v3 resources and serves
// them over ADS to every edge (Envoy, or the kilnd gateway).
//
// It owns two things:
//
//   - Translate, a pure function from a snapshot of Knative Routes, observed
//     instances, per-revision timeouts and the autoscaler's activator-in-path
//     signal, DomainMappings, TLS secrets and config-network http-protocol to
//     the edge listeners (kiln-http, kiln-internal and, when a certificate is
//     there to serve, kiln-https with per-SNI filter chains; see edge.go), a
//     RouteConfiguration per listener, the SDS secrets they name, one EDS
//     Cluster per referenced revision and one ClusterLoadAssignment per
//     cluster. It does no I/O and reads no clock. Every Envoy Route entry
//     carries its Knative route's (or DomainMapping's) labels, annotations
//     and ingress name and namespace in filter_metadata["kiln.dev/route"]
//     (metadata.go), the edge-side end of Knative's Service → Route →
//     ingress label propagation.
//   - Server, the `kilnd xds` role: it follows the store (routes,
//     revisions, instances, scale, activators, domain mappings, secrets:
//     typed store.Caches behind one store.Mirror, owned by one goroutine)
//     and the live config, recomputes the snapshot on change and publishes
//     it through a go-control-plane snapshot cache in ADS mode.
//
// One snapshot for every edge: all edges serve the same routes, so the cache
// is keyed by a node hash that maps every node to the same key ("kiln").
// SetSnapshot then wakes every connected edge at once and an edge that
// connects later is answered from the same snapshot, without the server
// having to notice new node IDs. The price is that the cache's per-node
// status is shared; nothing here reads it.
//
// A revision's endpoints are either its ready instances (Knative's serve
// mode) or the activators alone (proxy mode): proxy mode when it has no
// ready instance, or when its scale record says ActivatorInPath (the
// autoscaler found too little excess burst capacity). The activators are
// every one registered under activators/ (leased records, so dead ones
// drop out), or the --activator-address when none is registered.
//
// Each resource type carries its own version, bumped only when that type's
// content changes, so an endpoint change pushes EDS alone and edges do not
// re-receive listeners and clusters on the cold-start path.
//
// Secrets carry private keys: xds is, with the apiserver, their only reader,
// and it must never log their data. Under mutual TLS (Run's options, built
// by internal/mtls with Callers) only gateway identities may subscribe, so
// only edges receive SDS secrets; with Options.UpstreamCA every revision
// cluster carries an UpstreamTlsContext naming the edge's static client
// secret (EdgeClientSecret, never served over SDS) and accepting only agent
// and activator identities (upstream_tls.go).
//
// The package must never write to the store: xds is a pure reader (one
// writer per prefix), and it must never publish a snapshot before every
// watched prefix has been listed once, or a restarting xds server would
// briefly tell every edge that no routes exist.
package xds
