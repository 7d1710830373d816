package agent

import (
	"context"
	"net"
	"net/http"
	"time"
)

// probeClient never reuses connections: a probe must see the app as a new
// client would.
var probeClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// probe reports whether the app at target answers: a TCP connect, or an
// HTTP GET of path answered with 2xx/3xx.
func probe(ctx context.Context, target, path string) bool {
	if path == "" {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "kiln-agent-probe")
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
