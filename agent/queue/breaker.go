package queue

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrQueueFull is returned by Breaker.Acquire when both the in-flight slots
// and the wait queue are taken.
var ErrQueueFull = errors.New("queue full")

// Breaker admits at most capacity concurrent holders and lets at most
// queueDepth more wait for a slot; everything beyond is refused at once so
// an overloaded instance sheds load instead of building unbounded latency.
type Breaker struct {
	slots    chan struct{}
	maxTotal int64
	total    atomic.Int64 // holders + waiters
}

// NewBreaker returns a breaker with capacity in-flight slots (> 0) and a
// wait queue of queueDepth (>= 0).
func NewBreaker(capacity, queueDepth int) *Breaker {
	return &Breaker{
		slots:    make(chan struct{}, capacity),
		maxTotal: int64(capacity + queueDepth),
	}
}

// Acquire takes a slot, waiting in the queue if needed. It returns
// ErrQueueFull when the queue is full and ctx.Err() if ctx ends while
// waiting. A nil error must be paired with exactly one Release.
func (b *Breaker) Acquire(ctx context.Context) error {
	if b.total.Add(1) > b.maxTotal {
		b.total.Add(-1)
		return ErrQueueFull
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		b.total.Add(-1)
		return ctx.Err()
	}
}

// Release frees a slot taken by Acquire.
func (b *Breaker) Release() {
	<-b.slots
	b.total.Add(-1)
}

// InFlight is the number of slots held.
func (b *Breaker) InFlight() int { return len(b.slots) }

// Pending is holders plus waiters.
func (b *Breaker) Pending() int64 { return b.total.Load() }
