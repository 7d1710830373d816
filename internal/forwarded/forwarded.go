// Package forwarded keeps what the edge said about a request's client
// across kiln's internal hops (activator, queue-proxy), so the container
// sees the Forwarded and X-Forwarded-* headers of Knative's runtime
// contract as the edge set them.
package forwarded

import "net/http/httputil"

// Keep is called from a ReverseProxy's Rewrite, which has removed the
// forwarding headers from the outbound request. It restores the edge's
// RFC 7239 Forwarded, X-Forwarded-Proto and X-Forwarded-Host, and appends
// this hop's peer to the inbound X-Forwarded-For, as a ReverseProxy with a
// Director (Knative's queue-proxy) does. A header the inbound request lacks
// is set for this hop (SetXForwarded).
func Keep(pr *httputil.ProxyRequest) {
	if xff := pr.In.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		pr.Out.Header["X-Forwarded-For"] = append([]string(nil), xff...)
	}
	pr.SetXForwarded()
	for _, h := range []string{"Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := pr.In.Header.Values(h); len(v) > 0 {
			pr.Out.Header[h] = append([]string(nil), v...)
		}
	}
}
