package controller

import (
	"testing"
	"time"
)

// fakeClock is moved by hand; the queue never sleeps.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time       { return c.t }
func (c *fakeClock) Step(d time.Duration) { c.t = c.t.Add(d) }
func newTestQueue() (*queue, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	return newQueue(c.Now, retryBase, retryCap), c
}
func key(name string) workKey { return workKey{kRevision, "default", name} }
func drain(q *queue) (out []string) {
	for {
		k, ok := q.Get()
		if !ok {
			return out
		}
		out = append(out, k.name)
		q.Done(k)
	}
}

func TestQueueBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"first failure", 0, 5 * time.Millisecond},
		{"second", 1, 10 * time.Millisecond},
		{"fifth", 4, 80 * time.Millisecond},
		{"just under the cap", 12, 20480 * time.Millisecond},
		{"capped", 13, 30 * time.Second},
		{"long capped", 200, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue()
			q.failures[key("a")] = tc.failures
			if got := q.When(key("a")); got != tc.want {
				t.Fatalf("When after %d failures = %v, want %v", tc.failures, got, tc.want)
			}
			if q.Failures(key("a")) != tc.failures+1 {
				t.Fatalf("failures = %d, want %d", q.Failures(key("a")), tc.failures+1)
			}
		})
	}
}

func TestQueueRateLimitedRetry(t *testing.T) {
	q, clk := newTestQueue()
	a := key("a")
	for i, wait := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		q.AddRateLimited(a)
		at, ok := q.NextRetry()
		if !ok || at.Sub(clk.Now()) != wait {
			t.Fatalf("failure %d: next retry in %v, want %v", i+1, at.Sub(clk.Now()), wait)
		}
		clk.Step(wait - time.Millisecond)
		q.Promote()
		if q.Len() != 0 {
			t.Fatalf("failure %d: ready before its backoff ended", i+1)
		}
		clk.Step(time.Millisecond)
		q.Promote()
		if got := drain(q); len(got) != 1 {
			t.Fatalf("failure %d: got %v after the backoff, want [a]", i+1, got)
		}
	}
	q.Forget(a)
	q.AddRateLimited(a)
	if at, _ := q.NextRetry(); at.Sub(clk.Now()) != retryBase {
		t.Fatalf("after Forget the backoff is %v, want %v", at.Sub(clk.Now()), retryBase)
	}
}

func TestQueueSemantics(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(q *queue, clk *fakeClock) []string
		want []string
	}{
		{"FIFO", func(q *queue, _ *fakeClock) []string {
			q.Add(key("a"))
			q.Add(key("b"))
			return drain(q)
		}, []string{"a", "b"}},
		{"pending keys dedupe", func(q *queue, _ *fakeClock) []string {
			q.Add(key("a"))
			q.Add(key("b"))
			q.Add(key("a"))
			return drain(q)
		}, []string{"a", "b"}},
		{"empty names are dropped", func(q *queue, _ *fakeClock) []string {
			q.Add(key(""))
			return drain(q)
		}, nil},
		{"re-added while processing runs again after Done", func(q *queue, _ *fakeClock) []string {
			q.Add(key("a"))
			k, _ := q.Get()
			q.Add(key("a"))
			if q.Len() != 0 {
				return []string{"ready while processing"}
			}
			q.Done(k)
			return append([]string{k.name}, drain(q)...)
		}, []string{"a", "a"}},
		{"Add ends a backoff at once", func(q *queue, _ *fakeClock) []string {
			q.AddRateLimited(key("a"))
			q.Add(key("a"))
			if _, ok := q.NextRetry(); ok {
				return []string{"still waiting"}
			}
			return drain(q)
		}, []string{"a"}},
		{"a ready key does not wait", func(q *queue, _ *fakeClock) []string {
			q.Add(key("a"))
			q.AddRateLimited(key("a"))
			if _, ok := q.NextRetry(); ok {
				return []string{"waiting while ready"}
			}
			return drain(q)
		}, []string{"a"}},
		{"retries come back in deadline order", func(q *queue, clk *fakeClock) []string {
			q.failures[key("slow")] = 3
			q.AddRateLimited(key("slow")) // 40ms
			q.AddRateLimited(key("fast")) // 5ms
			clk.Step(time.Second)
			q.Promote()
			return drain(q)
		}, []string{"fast", "slow"}},
		{"a waiting key keeps the earlier deadline", func(q *queue, clk *fakeClock) []string {
			q.AddRateLimited(key("a")) // 5ms
			q.AddRateLimited(key("a")) // would be 10ms
			clk.Step(5 * time.Millisecond)
			q.Promote()
			return drain(q)
		}, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, clk := newTestQueue()
			got := tc.run(q, clk)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
