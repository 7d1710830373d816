package meter

import (
	"math"
	"testing"
	"time"
)

func TestConcurrencyMeter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type ev struct {
		ms      int
		in      bool
		proxied bool
	}
	tests := []struct {
		name   string
		events []ev
		end    int
		want   Report
	}{
		{"idle", nil, 1000, Report{Period: time.Second}},
		{"one request for half the period", []ev{{0, true, false}, {500, false, false}}, 1000,
			Report{AverageConcurrency: 0.5, RequestCount: 1, Period: time.Second}},
		{"two overlapping, one proxied", []ev{{0, true, false}, {250, true, true}, {750, false, true}, {1000, false, false}}, 1000,
			Report{AverageConcurrency: 1.5, AverageProxiedConcurrency: 0.5, RequestCount: 2, ProxiedRequestCount: 1, Period: time.Second}},
		{"still running at the end", []ev{{500, true, false}}, 2000,
			Report{AverageConcurrency: 0.75, RequestCount: 1, Period: 2 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMeter(t0)
			for _, e := range tc.events {
				if e.in {
					m.In(at(e.ms), e.proxied)
				} else {
					m.Out(at(e.ms), e.proxied)
				}
			}
			got := m.Report(at(tc.end))
			if !sameReport(got, tc.want) {
				t.Errorf("report = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A request that spans two periods counts in both, and the second period
// starts where the first ended.
func TestConcurrencyMeterCarriesOver(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := NewMeter(t0)
	m.In(t0, true)
	if r := m.Report(t0.Add(time.Second)); !sameReport(r, Report{AverageConcurrency: 1, AverageProxiedConcurrency: 1, RequestCount: 1, ProxiedRequestCount: 1, Period: time.Second}) {
		t.Fatalf("first period: %+v", r)
	}
	m.Out(t0.Add(1500*time.Millisecond), true)
	if r := m.Report(t0.Add(2 * time.Second)); !sameReport(r, Report{AverageConcurrency: 0.5, AverageProxiedConcurrency: 0.5, Period: time.Second}) {
		t.Fatalf("second period: %+v", r)
	}
}

func sameReport(a, b Report) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return eq(a.AverageConcurrency, b.AverageConcurrency) && eq(a.AverageProxiedConcurrency, b.AverageProxiedConcurrency) &&
		eq(a.RequestCount, b.RequestCount) && eq(a.ProxiedRequestCount, b.ProxiedRequestCount) && a.Period == b.Period
}

// The proxy counts requests through the activator apart from direct ones,
// and never counts probes.
