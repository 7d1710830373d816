package controller

import (
	"slices"
	"strings"
	"time"
)

// Retry backoff of a failing key: 5ms doubling per consecutive failure up to
// 30s, as client-go's per-item exponential limiter. The base is short
// because most failures are compare-and-swap conflicts with our own
// previous write, which the next pass resolves at once; the cap keeps a
// key that fails for good (an unreachable etcd, a broken object) from
// spinning while still being retried twice a minute.
const (
	retryBase = 5 * time.Millisecond
	retryCap  = 30 * time.Second
)

// queue is the controller's work queue, in the shape of client-go's
// rate-limited work queue: a key waits at most once (dedupe), a key that is
// being processed and added again is processed once more after Done, and a
// failing key comes back after a per-key exponential backoff that Forget
// resets. It is owned by the leader's one goroutine and not safe for
// concurrent use; its clock is injected so tests move time by hand.
type queue struct {
	now       func() time.Time
	base, cap time.Duration

	order      []workKey             // ready keys, FIFO
	queued     map[workKey]bool      // keys in order
	processing map[workKey]bool      // handed out by Get, not yet Done
	dirty      map[workKey]bool      // added while processing
	waiting    map[workKey]time.Time // backing off until
	failures   map[workKey]int
}

func newQueue(now func() time.Time, base, cap time.Duration) *queue {
	return &queue{
		now: now, base: base, cap: cap,
		queued:     map[workKey]bool{},
		processing: map[workKey]bool{},
		dirty:      map[workKey]bool{},
		waiting:    map[workKey]time.Time{},
		failures:   map[workKey]int{},
	}
}

// Add makes k ready now. A key backing off is made ready at once too: the
// pass it gets now supersedes the retry, and fails into a new backoff if
// the cause persists.
func (q *queue) Add(k workKey) {
	if k.name == "" {
		return
	}
	delete(q.waiting, k)
	if q.processing[k] {
		q.dirty[k] = true
		return
	}
	if !q.queued[k] {
		q.queued[k] = true
		q.order = append(q.order, k)
	}
}

// AddRateLimited makes k ready after its backoff: base × 2^(failures), at
// most cap. A key already waiting keeps the earlier of the two times.
func (q *queue) AddRateLimited(k workKey) {
	d := q.When(k)
	at := q.now().Add(d)
	if prev, ok := q.waiting[k]; ok && !at.Before(prev) {
		return
	}
	if q.queued[k] {
		return // already ready: it runs before any backoff would end
	}
	q.waiting[k] = at
}

// When returns the backoff of k's next failure and counts it.
func (q *queue) When(k workKey) time.Duration {
	n := q.failures[k]
	q.failures[k] = n + 1
	d := q.base
	for range n {
		d *= 2
		if d >= q.cap {
			return q.cap
		}
	}
	return min(d, q.cap)
}

// Forget resets k's backoff after a success.
func (q *queue) Forget(k workKey) { delete(q.failures, k) }

// Failures is how many times in a row k failed.
func (q *queue) Failures(k workKey) int { return q.failures[k] }

// Len is the number of keys ready now (after Promote).
func (q *queue) Len() int { return len(q.order) }

// Get hands out the oldest ready key; Done must follow.
func (q *queue) Get() (workKey, bool) {
	if len(q.order) == 0 {
		return workKey{}, false
	}
	k := q.order[0]
	q.order = q.order[1:]
	delete(q.queued, k)
	q.processing[k] = true
	return k, true
}

// Done ends the processing of k; if k was added meanwhile it is ready again.
func (q *queue) Done(k workKey) {
	delete(q.processing, k)
	if q.dirty[k] {
		delete(q.dirty, k)
		q.Add(k)
	}
}

// Promote makes every key whose backoff has ended ready.
func (q *queue) Promote() {
	now := q.now()
	var due []workKey
	for k, at := range q.waiting {
		if !at.After(now) {
			due = append(due, k)
		}
	}
	// Oldest deadline first, so retries keep the order they failed in.
	slices.SortFunc(due, func(a, b workKey) int {
		if c := q.waiting[a].Compare(q.waiting[b]); c != 0 {
			return c
		}
		return strings.Compare(a.String(), b.String())
	})
	for _, k := range due {
		delete(q.waiting, k)
		q.Add(k)
	}
}

// NextRetry is when the earliest backing-off key becomes ready.
func (q *queue) NextRetry() (time.Time, bool) {
	var next time.Time
	for _, at := range q.waiting {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}
