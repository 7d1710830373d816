package autoscaler

import (
	"log/slog"
	"math"
	"sync"
	"time"

	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// defaultBuckets sizes a revision's ring before its spec is known: the
// default stable window in seconds.
const defaultBuckets = 60

// collector keeps, per revision, one-second buckets of concurrency and
// requests per second summed over its sources (instances and activators),
// like Knative's timed float buckets. The stable and panic windows are
// both read from the same ring: the panic window is its newest part.
//
// A source that reports twice within one second counts once, as the mean
// of its reports, so a sender's jitter does not double its load. Safe for
// concurrent use: the gRPC handlers record, the leader loop reads.
type collector struct {
	mu   sync.Mutex
	revs map[RevisionKey]*series
}

type series struct {
	ring []bucket
	// first is the unix second of the first stat: windows average over
	// the seconds since then, not over time before any data.
	first int64
	// cur is each source's contribution to its latest second.
	cur map[string]*sourceSecond
}

type bucket struct {
	sec       int64
	conc, rps float64
}

type sourceSecond struct {
	sec       int64
	n         float64
	conc, rps float64 // sums of the reports in sec
}

func newCollector() *collector { return &collector{revs: map[RevisionKey]*series{}} }

// statValues returns what a stat adds to its revision's buckets. Requests
// the activator proxied to the instance are already counted by the
// activator's own stat, so an instance's proxied part is left out
// (Knative's collector does the same).
func statValues(s *pb.Stat) (conc, rps float64) {
	conc = math.Max(0, s.GetAverageConcurrentRequests()-s.GetAverageProxiedConcurrentRequests())
	rps = math.Max(0, s.GetRequestCount()-s.GetProxiedRequestCount())
	return conc, rps
}

// recordBatch records every stat of b received at now, leaving out those
// without a revision and those statValid refuses.
func (c *collector) recordBatch(b *pb.MetricBatch, now time.Time, log *slog.Logger) {
	for _, st := range b.GetStats() {
		if st.GetNamespace() == "" || st.GetRevision() == "" {
			continue
		}
		if !statValid(st) {
			log.Debug("refused a stat with a non-finite or negative value", "source", b.GetSource(),
				"namespace", st.GetNamespace(), "revision", st.GetRevision())
			continue
		}
		conc, rps := statValues(st)
		c.record(RevisionKey{st.GetNamespace(), st.GetRevision()}, b.GetSource()+"/"+st.GetPodName(), statSecond(st, now), conc, rps)
	}
}

// statValid refuses a stat carrying a NaN, infinite or negative value:
// NaN poisons every window average it enters (freezing the revision's
// scale) and +Inf multiplies it, so one bad sender must not reach them.
func statValid(s *pb.Stat) bool {
	for _, v := range []float64{s.GetAverageConcurrentRequests(), s.GetAverageProxiedConcurrentRequests(),
		s.GetRequestCount(), s.GetProxiedRequestCount()} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return false
		}
	}
	return true
}

// statSecond picks the bucket of a stat: the end of its period when the
// sender's clock agrees with ours to within two seconds, else arrival.
func statSecond(s *pb.Stat, now time.Time) int64 {
	if ts := s.GetTimestampUnixNano(); ts != 0 {
		t := time.Unix(0, ts)
		if d := t.Sub(now); d > -2*time.Second && d < 2*time.Second {
			return t.Unix()
		}
	}
	return now.Unix()
}

// record adds one source's report for second sec.
func (c *collector) record(k RevisionKey, source string, sec int64, conc, rps float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.revs[k]
	if s == nil {
		s = &series{ring: make([]bucket, defaultBuckets), first: sec, cur: map[string]*sourceSecond{}}
		c.revs[k] = s
	}
	s.first = min(s.first, sec)
	src := s.cur[source]
	switch {
	case src == nil || sec > src.sec:
		src = &sourceSecond{sec: sec}
		s.cur[source] = src
	case sec < src.sec:
		// A late report for an older second: count it as it is.
		s.add(sec, conc, rps)
		return
	default:
		// Second report in the same second: replace the mean.
		s.add(sec, -src.conc/src.n, -src.rps/src.n)
	}
	src.n++
	src.conc += conc
	src.rps += rps
	s.add(sec, src.conc/src.n, src.rps/src.n)
}

func (s *series) add(sec int64, conc, rps float64) {
	b := &s.ring[int(sec%int64(len(s.ring)))]
	if b.sec != sec {
		if b.sec > sec {
			return // older than the ring holds
		}
		*b = bucket{sec: sec}
	}
	b.conc += conc
	b.rps += rps
}

// window is the metric of one revision at now.
type window struct {
	stableConc, panicConc float64
	stableRPS, panicRPS   float64
	haveData              bool
}

// read averages the revision's buckets over the stable and panic windows
// ending at now, resizing its ring to the stable window. It also forgets
// sources that stopped reporting.
func (c *collector) read(k RevisionKey, now time.Time, stable, panic time.Duration) window {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.revs[k]
	if s == nil {
		return window{}
	}
	nowSec := now.Unix()
	n := max(1, int(math.Ceil(stable.Seconds())))
	if n != len(s.ring) {
		s.resize(n)
	}
	for name, src := range s.cur {
		if src.sec < nowSec-2 {
			delete(s.cur, name)
		}
	}
	avg := func(secs int) (conc, rps float64) {
		// Knative's WindowAverage: a second without a report counts as
		// zero, time before the first report does not count.
		secs = max(1, min(secs, n))
		for sec := nowSec - int64(secs) + 1; sec <= nowSec; sec++ {
			b := s.ring[int(sec%int64(n))]
			if b.sec == sec {
				conc += b.conc
				rps += b.rps
			}
		}
		d := float64(max(1, min(int64(secs), nowSec-s.first+1)))
		return conc / d, rps / d
	}
	w := window{haveData: true}
	w.stableConc, w.stableRPS = avg(n)
	w.panicConc, w.panicRPS = avg(int(math.Ceil(panic.Seconds())))
	return w
}

func (s *series) resize(n int) {
	old := s.ring
	s.ring = make([]bucket, n)
	for _, b := range old {
		if b.sec != 0 {
			s.add(b.sec, b.conc, b.rps)
		}
	}
}

// forget drops the revisions keep does not hold.
func (c *collector) forget(keep func(RevisionKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.revs {
		if !keep(k) {
			delete(c.revs, k)
		}
	}
}
