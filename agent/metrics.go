package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kiln-serving/kiln/internal/reporter"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// reportMetrics streams one batch per second, one Stat per instance with a
// live queue-proxy, to the autoscaler leader until ctx ends.
func (a *Agent) reportMetrics(ctx context.Context) error {
	c := reporter.New("agent/"+a.cfg.NodeName, a.cfg.AutoscalerLeaders, a.collectStats, reporter.DefaultPeriod, a.cfg.AutoscalerCreds, a.log)
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("metrics reporter: %w", err)
	}
	return nil
}

// collectStats closes every queue-proxy's reporting period at now. The
// queue-proxies are asked together, outside the agent's lock; one that
// does not answer within the reporting period is left out.
func (a *Agent) collectStats(now time.Time) []*pb.Stat {
	type one struct {
		w *worker
		q queueProxy
	}
	a.mu.Lock()
	qs := make([]one, 0, len(a.workers))
	for _, w := range a.workers {
		if r := w.proxyRef.Load(); r != nil {
			qs = append(qs, one{w, r.q})
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), reporter.DefaultPeriod/2)
	defer cancel()
	stats := make([]*pb.Stat, len(qs))
	var wg sync.WaitGroup
	for i, o := range qs {
		wg.Go(func() {
			r, err := o.q.Report(ctx, now)
			if err != nil {
				a.log.Debug("queue-proxy report", "instance", o.w.name, "error", err)
				return
			}
			stats[i] = &pb.Stat{
				Namespace:                        o.w.p.Spec.Namespace,
				Revision:                         o.w.p.Spec.Revision,
				PodName:                          o.w.name,
				AverageConcurrentRequests:        r.AverageConcurrency,
				AverageProxiedConcurrentRequests: r.AverageProxiedConcurrency,
				RequestCount:                     r.RequestCount,
				ProxiedRequestCount:              r.ProxiedRequestCount,
				ProcessUptimeSeconds:             now.Sub(r.Created).Seconds(),
				TimestampUnixNano:                now.UnixNano(),
			}
		})
	}
	wg.Wait()
	out := make([]*pb.Stat, 0, len(stats))
	for _, s := range stats {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}
