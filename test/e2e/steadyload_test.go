package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadWindow counts the requests sent while it was current (by when each
// started) and keeps the first failures.
type loadWindow struct {
	name    string
	start   time.Time
	sent    atomic.Int64
	failed  atomic.Int64
	skipped atomic.Int64 // ticks dropped because every worker was busy
	// inflight are the window's requests not answered yet.
	inflight atomic.Int64
	mu       sync.Mutex
	failures []loadFailure
}

// loadFailure is one failed request: when it started and ended, and why.
type loadFailure struct {
	start, end time.Time
	host, what string
}

func (w *loadWindow) fail(start time.Time, host, what string) {
	w.failed.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, loadFailure{start: start, end: time.Now(), host: host, what: what})
}

// samples is the first failures of the window for which keep is true (all
// when keep is nil), and how many there are.
func (w *loadWindow) samples(keep func(loadFailure) bool) (n int, first []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.failures {
		if keep != nil && !keep(f) {
			continue
		}
		n++
		if len(first) < 5 {
			first = append(first, fmt.Sprintf("+%.1fs..+%.1fs %s: %s", f.start.Sub(w.start).Seconds(), f.end.Sub(w.start).Seconds(), f.host, f.what))
		}
	}
	return n, first
}

// steadyLoad sends a fixed rate of GETs to each host through the gateway
// from a bounded pool of workers per host, whatever the answers take, and
// counts them per window. A reply is a success when it is 200 with one of
// the bodies accepted for its host. The app holds every request (hold), so
// a process killed on the data path always has some in flight.
type steadyLoad struct {
	gateway string
	path    string // "/?sleep=HOLD"
	client  *http.Client
	cur     atomic.Pointer[loadWindow]
	mu      sync.Mutex
	accept  map[string]map[string]bool // host → bodies
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startSteadyLoad sends rate requests per second to each host (bodies:
// host → first accepted body), each held hold by the app, until stopped.
func startSteadyLoad(gateway string, bodies map[string]string, rate, workers int, hold time.Duration) *steadyLoad {
	l := &steadyLoad{gateway: gateway, path: "/?sleep=" + hold.String(), accept: map[string]map[string]bool{}, stop: make(chan struct{}),
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers * len(bodies)}}}
	l.cur.Store(&loadWindow{name: "start", start: time.Now()})
	for host, body := range bodies {
		l.accept[host] = map[string]bool{body: true}
		jobs := make(chan struct{}, workers)
		for range workers {
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					case <-jobs:
						l.one(host)
					}
				}
			})
		}
		l.wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
					select {
					case jobs <- struct{}{}:
					default:
						l.cur.Load().skipped.Add(1)
					}
				}
			}
		})
	}
	return l
}

// one sends one request to host and counts it in the window current when
// it started.
func (l *steadyLoad) one(host string) {
	w := l.cur.Load()
	start := time.Now()
	w.sent.Add(1)
	w.inflight.Add(1)
	defer w.inflight.Add(-1)
	req, _ := http.NewRequest("GET", l.gateway+l.path, nil)
	req.Host = host
	resp, err := l.client.Do(req)
	if err != nil {
		w.fail(start, host, err.Error())
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := strings.TrimSpace(string(b))
	switch {
	case err != nil:
		w.fail(start, host, fmt.Sprintf("%d, body cut: %v", resp.StatusCode, err))
	case resp.StatusCode != http.StatusOK:
		w.fail(start, host, fmt.Sprintf("%d %q", resp.StatusCode, truncate(body, 200)))
	case !l.accepts(host, body):
		w.fail(start, host, fmt.Sprintf("200 with unexpected body %q", truncate(body, 200)))
	}
}

func (l *steadyLoad) accepts(host, body string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accept[host][body]
}

// alsoAccept adds body to what host may answer (before an update, so old
// and new bodies both count).
func (l *steadyLoad) alsoAccept(host, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accept[host][body] = true
}

// window makes a new window current and returns the one it ends, once
// every request of that one was answered (the client times out at 15s).
func (l *steadyLoad) window(name string) *loadWindow {
	w := l.cur.Swap(&loadWindow{name: name, start: time.Now()})
	for deadline := time.Now().Add(20 * time.Second); w.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// halt stops the load and waits for requests in flight.
func (l *steadyLoad) halt() *loadWindow {
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
	return l.cur.Load()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
