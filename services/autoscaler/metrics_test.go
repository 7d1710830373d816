package autoscaler

import (
	"log/slog"
	"math"
	"testing"
	"time"

	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCollectorWindows(t *testing.T) {
	k := RevisionKey{"default", "a"}
	base := t0.Unix()
	tests := []struct {
		name string
		// record: second offset, source, concurrency, rps
		recs                  []rec
		now                   int64 // offset
		stable, panic         time.Duration
		wantStable, wantPanic float64
		wantRPS               float64
	}{
		{name: "one source, averaged since the first stat", recs: []rec{{0, "p1", 2, 10}, {1, "p1", 4, 20}},
			now: 1, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 3, wantPanic: 3, wantRPS: 15},
		{name: "sources add up", recs: []rec{{0, "p1", 2, 1}, {0, "p2", 3, 1}, {0, "activator", 1, 1}},
			now: 0, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 6, wantPanic: 6, wantRPS: 3},
		{name: "two reports in one second count as their mean", recs: []rec{{0, "p1", 2, 10}, {0, "p1", 4, 30}},
			now: 0, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 3, wantPanic: 3, wantRPS: 20},
		{name: "seconds without reports count as zero", recs: []rec{{0, "p1", 10, 0}, {9, "p1", 10, 0}},
			now: 9, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 2, wantPanic: 10.0 / 6},
		{name: "old data leaves the windows", recs: []rec{{0, "p1", 60, 0}, {60, "p1", 6, 0}},
			now: 65, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 0.1, wantPanic: 1},
		{name: "all data older than the window", recs: []rec{{0, "p1", 60, 0}},
			now: 100, stable: 60 * time.Second, panic: 6 * time.Second, wantStable: 0, wantPanic: 0},
		{name: "short window", recs: []rec{{0, "p1", 10, 0}, {5, "p1", 20, 0}, {6, "p1", 30, 0}},
			now: 6, stable: 6 * time.Second, panic: time.Second, wantStable: 50.0 / 6, wantPanic: 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector()
			for _, r := range tc.recs {
				c.record(k, r.src, base+r.sec, r.conc, r.rps)
			}
			w := c.read(k, time.Unix(base+tc.now, 500), tc.stable, tc.panic)
			if !w.haveData || !near(w.stableConc, tc.wantStable) || !near(w.panicConc, tc.wantPanic) || !near(w.stableRPS, tc.wantRPS) {
				t.Fatalf("window = %+v, want stable %g panic %g rps %g", w, tc.wantStable, tc.wantPanic, tc.wantRPS)
			}
		})
	}
	if w := newCollector().read(k, t0, time.Minute, 6*time.Second); w.haveData {
		t.Fatal("empty collector has data")
	}
}

type rec struct {
	sec       int64
	src       string
	conc, rps float64
}

// Resizing the ring (a window change) keeps the data that still fits.
func TestCollectorResize(t *testing.T) {
	k := RevisionKey{"default", "a"}
	c := newCollector()
	base := t0.Unix()
	for i := int64(0); i < 60; i++ {
		c.record(k, "p", base+i, 1, 0)
	}
	w := c.read(k, time.Unix(base+59, 0), 10*time.Second, time.Second)
	if !near(w.stableConc, 1) {
		t.Fatalf("after shrink: %+v", w)
	}
	w = c.read(k, time.Unix(base+59, 0), 120*time.Second, time.Second)
	// Only the 10 seconds the small ring kept are left, over 60 s since
	// the first stat.
	if !near(w.stableConc, 10.0/60) {
		t.Fatalf("after grow: %+v", w)
	}
}

func TestStatValues(t *testing.T) {
	// An instance's proxied share is the activator's to report.
	conc, rps := statValues(&pb.Stat{AverageConcurrentRequests: 5, AverageProxiedConcurrentRequests: 2, RequestCount: 10, ProxiedRequestCount: 4})
	if conc != 3 || rps != 6 {
		t.Fatalf("statValues = %g %g", conc, rps)
	}
	if conc, rps := statValues(&pb.Stat{AverageProxiedConcurrentRequests: 1}); conc != 0 || rps != 0 {
		t.Fatalf("negative: %g %g", conc, rps)
	}
	now := time.Unix(1000, 0)
	if s := statSecond(&pb.Stat{TimestampUnixNano: time.Unix(999, 900).UnixNano()}, now); s != 999 {
		t.Fatalf("stat second %d", s)
	}
	if s := statSecond(&pb.Stat{TimestampUnixNano: time.Unix(900, 0).UnixNano()}, now); s != 1000 {
		t.Fatalf("skewed clock: stat second %d", s)
	}
}

// TestRecordBatchRefusesNonFinite: a NaN would freeze a revision's scale
// (every window average becomes NaN) and +Inf would multiply it; negative
// counts make no sense. Such stats are dropped, the rest of the batch kept.
func TestRecordBatchRefusesNonFinite(t *testing.T) {
	now := time.Unix(2000, 0)
	tests := []struct {
		name string
		stat *pb.Stat
	}{
		{"NaN concurrency", &pb.Stat{AverageConcurrentRequests: math.NaN()}},
		{"+Inf concurrency", &pb.Stat{AverageConcurrentRequests: math.Inf(1)}},
		{"-Inf proxied concurrency", &pb.Stat{AverageConcurrentRequests: 1, AverageProxiedConcurrentRequests: math.Inf(-1)}},
		{"NaN requests", &pb.Stat{RequestCount: math.NaN()}},
		{"+Inf proxied requests", &pb.Stat{ProxiedRequestCount: math.Inf(1)}},
		{"negative concurrency", &pb.Stat{AverageConcurrentRequests: -5}},
		{"negative requests", &pb.Stat{RequestCount: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if statValid(tc.stat) {
				t.Fatalf("statValid(%v) = true", tc.stat)
			}
			bad, good := RevisionKey{"default", "bad"}, RevisionKey{"default", "good"}
			tc.stat.Namespace, tc.stat.Revision, tc.stat.PodName = bad.Namespace, bad.Name, "i1"
			c := newCollector()
			c.recordBatch(&pb.MetricBatch{Source: "agent/n1", Stats: []*pb.Stat{tc.stat,
				{Namespace: good.Namespace, Revision: good.Name, PodName: "i2", AverageConcurrentRequests: 2, RequestCount: 3}}},
				now, slog.New(slog.DiscardHandler))
			if w := c.read(bad, now, time.Minute, 6*time.Second); w.haveData {
				t.Fatalf("refused stat was recorded: %+v", w)
			}
			w := c.read(good, now, time.Minute, 6*time.Second)
			if !w.haveData || math.IsNaN(w.stableConc) || w.stableConc <= 0 {
				t.Fatalf("valid stat of the same batch: %+v", w)
			}
		})
	}
	if !statValid(&pb.Stat{AverageConcurrentRequests: 3, RequestCount: 1}) {
		t.Fatal("a finite stat is refused")
	}
}
