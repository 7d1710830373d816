package xds

// InternalHeaders are the request headers kiln's own hops set and trust:
// the weighted clusters' revision headers (the activator forwards to the
// revision they name), the activator's K-Proxy-Request (the queue-proxy
// counts such requests as already counted) and K-Network-Probe (the
// queue-proxy answers it itself). A client-sent copy would let anyone reach
// any revision through the activator, past cluster-local and disableRoute,
// or skew autoscaling, so every edge route configuration removes them.
//
// The removal sits on the RouteConfiguration, and the configuration sets
// most_specific_header_mutations_wins: Envoy then applies its mutations
// first and the weighted cluster's last, so the revision headers the
// cluster adds survive. (With Envoy's default order the route
// configuration's removal would run last and drop them.)
var InternalHeaders = []string{HeaderRevision, HeaderNamespace, "K-Proxy-Request", "K-Network-Probe"}
