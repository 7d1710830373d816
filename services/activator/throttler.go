package activator

import (
	"slices"

	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/timeout"
)

// pod is one ready instance as this activator sees it. inFlight counts the
// requests this activator has sent there and not yet finished.
type pod struct {
	endpoint string
	inFlight int
}

// waiter is a request queued for a slot; dispatch hands it one pod.
type waiter struct {
	granted chan *pod // buffered 1
}

// revision is everything requests need of one revision. Guarded by
// Activator.mu except meter, which is safe on its own.
type revision struct {
	key revKey
	// From the registry (zero when the Revision is unknown yet).
	known  bool
	cc     int64
	limits timeout.Limits
	// pods are the ready instances, sorted by endpoint.
	pods []*pod
	next int // round-robin cursor for ties
	// queue holds waiting requests, oldest first.
	queue []*waiter
	// poking is true while a poke for this revision is under way.
	poking bool
	// meter measures the requests this activator holds (queued or being
	// forwarded), for the autoscaler.
	meter *meter.Meter
	// idle counts reporting periods without any request, for cleanup.
	idle int
	// peers is the Activator's, shared by every revision.
	peers *peers
}

// peers is where this activator stands among the live activators: n of
// them (at least 1), self its index in identity order. Shared by every
// revision; guarded by Activator.mu.
type peers struct{ n, self int }

// share is one activator's part of an instance's cc slots when n
// activators share it (Knative's activator subsetting): cc/n each, and the
// remainder cc%n to different activators for different instances (rotating
// by the instance's index pod), so the n shares of one instance add up to
// exactly cc.
func share(cc, n, self, pod int) int {
	if n <= 1 {
		return cc
	}
	s := cc / n
	if ((self-pod)%n+n)%n < cc%n {
		s++
	}
	return s
}

// capacity returns how many requests this activator may have in flight to
// r.pods[idx]: its share of containerConcurrency, or -1
// (unlimited) when that is 0. An activator whose shares are all zero
// (fewer slots in all than activators) still gets one slot on one
// instance, as Knative gives every activator at least one: the
// queue-proxy's breaker then queues what goes over the hard limit.
// Callers hold the lock.
func (r *revision) capacity(idx int, minOne bool) int {
	if r.cc <= 0 {
		return -1
	}
	c := share(int(r.cc), r.peers.n, r.peers.self, idx)
	if c == 0 && minOne && idx == r.peers.self%len(r.pods) {
		c = 1
	}
	return c
}

// noShare reports whether this activator's shares of every pod are zero.
// Callers hold the lock.
func (r *revision) noShare() bool {
	if r.cc <= 0 || int(r.cc) >= r.peers.n {
		return false
	}
	for i := range r.pods {
		if share(int(r.cc), r.peers.n, r.peers.self, i) > 0 {
			return false
		}
	}
	return true
}

// pick returns the least-loaded pod with a free slot, ties broken round
// robin, or nil. Callers hold the lock.
func (r *revision) pick() *pod {
	n := len(r.pods)
	if n == 0 {
		return nil
	}
	minOne := r.noShare()
	var best *pod
	bestAt := 0
	for i := range n {
		idx := (r.next + i) % n
		p := r.pods[idx]
		if c := r.capacity(idx, minOne); c >= 0 && p.inFlight >= c {
			continue
		}
		if best == nil || p.inFlight < best.inFlight {
			best, bestAt = p, idx
		}
	}
	if best != nil {
		r.next = bestAt + 1
	}
	return best
}

// dispatch hands free slots to waiters in arrival order. Callers hold the
// lock.
func (r *revision) dispatch() {
	for len(r.queue) > 0 {
		p := r.pick()
		if p == nil {
			return
		}
		w := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		p.inFlight++
		w.granted <- p
	}
}

// setPods replaces the ready instances, keeping the in-flight counts of
// those that stay, and dispatches to the new ones. Callers hold the lock.
func (r *revision) setPods(endpoints []string) {
	slices.Sort(endpoints)
	old := map[string]*pod{}
	for _, p := range r.pods {
		old[p.endpoint] = p
	}
	pods := make([]*pod, 0, len(endpoints))
	for _, ep := range endpoints {
		if p := old[ep]; p != nil {
			pods = append(pods, p)
		} else {
			pods = append(pods, &pod{endpoint: ep})
		}
	}
	r.pods = pods
	r.dispatch()
}

// release frees a slot taken on p. Callers hold the lock.
func (r *revision) release(p *pod) {
	p.inFlight--
	r.dispatch()
}

// dequeue removes w if it is still queued and reports whether it was.
// Callers hold the lock.
func (r *revision) dequeue(w *waiter) bool {
	for i, q := range r.queue {
		if q == w {
			r.queue = slices.Delete(r.queue, i, i+1)
			return true
		}
	}
	return false
}
