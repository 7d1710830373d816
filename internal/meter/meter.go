package meter

import (
	"sync"
	"time"
)

// ProxyHeader marks a request forwarded by the activator (Knative's
// K-Proxy-Request), so the autoscaler can tell proxied load from direct
// load: while the activator is in the path the same requests would
// otherwise be counted twice.
const (
	ProxyHeaderName  = "K-Proxy-Request"
	ProxyHeaderValue = "activator"
)

// Report is what one queue-proxy saw over one reporting period, in the
// autoscaler's terms (Knative's Stat).
type Report struct {
	// AverageConcurrency is the time-weighted mean of requests in the
	// proxy (queued for a breaker slot or forwarded) over the period.
	AverageConcurrency float64
	// AverageProxiedConcurrency is the part that came via the activator.
	AverageProxiedConcurrency float64
	// RequestCount counts requests that arrived in the period.
	RequestCount float64
	// ProxiedRequestCount is the part that came via the activator.
	ProxiedRequestCount float64
	// Period is how long the period lasted.
	Period time.Duration
}

// Meter integrates the number of requests held over time, so a request
// that lasted 10ms of a 1s period weighs 0.01 and a request still running
// at the end of a period also counts in the next. The queue-proxy and the
// activator both measure with it. Safe for concurrent use.
type Meter struct {
	mu         sync.Mutex
	start      time.Time // beginning of the current period
	last       time.Time // last change of the counts
	cur, curPx int       // requests in the proxy now (all, proxied)
	area, pxA  float64   // request-seconds since start
	reqs, pxR  float64   // arrivals since start
}

// NewMeter starts the first period at now.
func NewMeter(now time.Time) *Meter {
	return &Meter{start: now, last: now}
}

// advance accumulates the area up to now. Callers hold mu.
func (m *Meter) advance(now time.Time) {
	if now.Before(m.last) {
		return // a clock step backwards: count nothing rather than negative
	}
	dt := now.Sub(m.last).Seconds()
	m.area += float64(m.cur) * dt
	m.pxA += float64(m.curPx) * dt
	m.last = now
}

// In counts a request arriving at now.
func (m *Meter) In(now time.Time, proxied bool) {
	m.mu.Lock()
	m.advance(now)
	m.cur++
	m.reqs++
	if proxied {
		m.curPx++
		m.pxR++
	}
	m.mu.Unlock()
}

// Out counts a request leaving at now; proxied must match its In.
func (m *Meter) Out(now time.Time, proxied bool) {
	m.mu.Lock()
	m.advance(now)
	m.cur--
	if proxied {
		m.curPx--
	}
	m.mu.Unlock()
}

// Report closes the current period at now and starts the next.
func (m *Meter) Report(now time.Time) Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	r := Report{RequestCount: m.reqs, ProxiedRequestCount: m.pxR, Period: now.Sub(m.start)}
	if secs := r.Period.Seconds(); secs > 0 {
		r.AverageConcurrency = m.area / secs
		r.AverageProxiedConcurrency = m.pxA / secs
	}
	m.start, m.area, m.pxA, m.reqs, m.pxR = now, 0, 0, 0, 0
	return r
}
