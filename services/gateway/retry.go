package gateway

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kiln-serving/kiln/internal/unsent"
)

// Connect-failure retries and outlier ejection, as kiln's Envoy config asks
// of Envoy (retry_on connect-failure with previous_hosts, and
// consecutive_local_origin_failure 1): a request whose connection to an
// endpoint could not be opened provably never reached it, so it is sent to
// another endpoint of the same cluster, and the endpoint that refused is
// left out of every cluster for ejectFor, without waiting for the xds
// server to drop it. A request of an idempotent method without a body
// whose connection broke before any answer came (the upstream died
// mid-request) is sent once more to another endpoint, as retry_on "reset"
// does for such requests in kiln's Envoy routes.

// ejectFor is how long an endpoint that refused a connection is skipped.
const ejectFor = 5 * time.Second

// maxConnectRetries bounds the other endpoints one request tries;
// maxResetRetries how many of those retries follow a connection broken
// after the request was sent.
const (
	maxConnectRetries = 3
	maxResetRetries   = 1
)

// outliers are the endpoints currently ejected, host:port → until when.
type outliers struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   func() time.Time
}

func newOutliers() *outliers {
	return &outliers{until: map[string]time.Time{}, now: time.Now}
}

func (o *outliers) eject(ep string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.until[ep] = o.now().Add(ejectFor)
}

func (o *outliers) ejected(ep string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.until[ep]
	if ok && !o.now().Before(t) {
		delete(o.until, ep)
		return false
	}
	return ok
}

// pick is the next endpoint of u in round-robin order that is neither
// ejected nor in tried; when every untried endpoint is ejected, the next
// untried one anyway (Envoy's panic mode: better a refused connection
// than no attempt); "" when all were tried.
func (u *upstream) pick(o *outliers, tried []string) string {
	n := len(u.endpoints)
	if n == 0 {
		return ""
	}
	start := u.next.Add(1) - 1
	fallback := ""
	for i := range uint64(n) {
		ep := u.endpoints[(start+i)%uint64(n)]
		if slices.Contains(tried, ep) {
			continue
		}
		if !o.ejected(ep) {
			return ep
		}
		if fallback == "" {
			fallback = ep
		}
	}
	return fallback
}

// retryTransport retries a request on another endpoint of its cluster
// when the connection could not be opened.
type retryTransport struct {
	base     http.RoundTripper
	outliers *outliers
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tg, ok := req.Context().Value(targetKey{}).(*target)
	if !ok || tg.upstream == nil {
		return rt.base.RoundTrip(req)
	}
	// The transport closes a request's body even when the dial fails; a
	// body nobody read yet must survive for the next attempt.
	body := req.Body
	if body != nil && body != http.NoBody {
		req.Body = keepOpen{body}
		defer body.Close()
	}
	tried := []string{req.URL.Host}
	resets := 0
	for {
		resp, err := rt.base.RoundTrip(req)
		if err == nil || req.Context().Err() != nil {
			return resp, err
		}
		switch {
		case unsent.Is(err):
			rt.outliers.eject(req.URL.Host)
		case unsent.Replayable(req, err) && resets < maxResetRetries:
			// The connection broke before any answer came: the upstream
			// (an activator or queue-proxy killed mid-request) may have
			// acted on it, which an idempotent method allows to repeat.
			resets++
		default:
			return nil, err
		}
		if len(tried) > maxConnectRetries {
			return nil, err
		}
		next := tg.upstream.pick(rt.outliers, tried)
		if next == "" {
			return nil, err
		}
		tried = append(tried, next)
		req = req.Clone(req.Context())
		req.URL.Host = next
	}
}

// keepOpen hides Close from the transport; the retry loop closes the body.
type keepOpen struct{ io.Reader }

func (keepOpen) Close() error { return nil }
