package activator

import (
	"slices"
	"time"

	"github.com/kiln-serving/kiln/agent/queue"
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
	known   bool
	cc      int64
	timeout time.Duration
	// pods are the ready instances, sorted by endpoint.
	pods []*pod
	next int // round-robin cursor for ties
	// queue holds waiting requests, oldest first.
	queue []*waiter
	// poking is true while a poke for this revision is under way.
	poking bool
	// meter measures the requests this activator holds (queued or being
	// forwarded), for the autoscaler.
	meter *queue.Meter
	// idle counts reporting periods without any request, for cleanup.
	idle int
}

// capacity is how many requests this activator may have in flight to one
// instance: containerConcurrency, or unlimited (0) when that is 0.
//
// With several activator replicas Knative gives each 1/N of every
// instance's slots; kiln routes every edge to one activator address today,
// so one activator holds the whole of each instance.
func (r *revision) capacity() int { return int(r.cc) }

// pick returns the least-loaded pod with a free slot, ties broken round
// robin, or nil. Callers hold the lock.
func (r *revision) pick() *pod {
	n := len(r.pods)
	if n == 0 {
		return nil
	}
	capacity := r.capacity()
	var best *pod
	bestAt := 0
	for i := range n {
		idx := (r.next + i) % n
		p := r.pods[idx]
		if capacity > 0 && p.inFlight >= capacity {
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
