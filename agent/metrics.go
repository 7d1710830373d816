package agent

import (
	"context"
	"fmt"
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

// collectStats closes every queue-proxy's reporting period at now.
func (a *Agent) collectStats(now time.Time) []*pb.Stat {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*pb.Stat, 0, len(a.workers))
	for _, w := range a.workers {
		p := w.proxyRef.Load()
		if p == nil {
			continue
		}
		r := p.Report(now)
		out = append(out, &pb.Stat{
			Namespace:                        w.p.Spec.Namespace,
			Revision:                         w.p.Spec.Revision,
			PodName:                          w.name,
			AverageConcurrentRequests:        r.AverageConcurrency,
			AverageProxiedConcurrentRequests: r.AverageProxiedConcurrency,
			RequestCount:                     r.RequestCount,
			ProxiedRequestCount:              r.ProxiedRequestCount,
			ProcessUptimeSeconds:             now.Sub(p.Created()).Seconds(),
			TimestampUnixNano:                now.UnixNano(),
		})
	}
	return out
}
