package activator

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// idlePeriods is how many empty reporting periods an entry without a
// Revision, instances or queue survives before it is dropped.
const idlePeriods = 3

// pokeTimeout bounds one poke; a poke that fails is retried while requests
// still wait, since the metric stream alone would take up to a second.
const pokeTimeout = 2 * time.Second

// collectStats reports, per revision, the requests this activator held in
// the period ending at now (Knative's activator stat: one per revision).
func (a *Activator) collectStats(now time.Time) []*pb.Stat {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*pb.Stat
	for k, r := range a.revs {
		rep := r.meter.Report(now)
		if rep.RequestCount == 0 && rep.AverageConcurrency == 0 {
			r.idle++
			if !r.known && len(r.pods) == 0 && len(r.queue) == 0 && r.idle > idlePeriods {
				delete(a.revs, k)
			}
			if r.idle > 1 {
				continue // one zero report says the load is gone
			}
		} else {
			r.idle = 0
		}
		out = append(out, &pb.Stat{
			Namespace:                 k.ns,
			Revision:                  k.name,
			PodName:                   a.opts.Identity,
			AverageConcurrentRequests: rep.AverageConcurrency,
			RequestCount:              rep.RequestCount,
			TimestampUnixNano:         now.UnixNano(),
		})
	}
	return out
}

// poke tells the autoscaler that r's requests wait without capacity, and
// tries again while they still wait and no instance is ready, until ctx
// (Run's) ends.
func (a *Activator) poke(ctx context.Context, r *revision) {
	defer func() {
		a.mu.Lock()
		r.poking = false
		a.mu.Unlock()
	}()
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		queued, ready := len(r.queue), len(r.pods)
		a.mu.Unlock()
		if queued == 0 || ready > 0 {
			return
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, pokeTimeout)
		desired, err := a.rep.Poke(pctx, r.key.ns, r.key.name, queued)
		cancel()
		if err == nil {
			a.log.Debug("poked autoscaler", "revision", r.key.String(), "queued", queued, "desired", desired,
				"took", time.Since(start))
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("poke autoscaler failed", "revision", r.key.String(), "attempt", attempt+1, "error", err)
		t := time.NewTimer(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// serveMetrics writes, in Prometheus' text format, the requests this
// activator took per revision and where it stands among the activators.
func (a *Activator) serveMetrics(w http.ResponseWriter) {
	a.mu.Lock()
	keys := slices.SortedFunc(maps.Keys(a.served), func(x, y revKey) int { return strings.Compare(x.String(), y.String()) })
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE kiln_activator_peers gauge\nkiln_activator_peers %d\n", a.peers.n)
	b.WriteString("# TYPE kiln_activator_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "kiln_activator_requests_total{namespace=%q,revision=%q} %d\n", k.ns, k.name, a.served[k])
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}
