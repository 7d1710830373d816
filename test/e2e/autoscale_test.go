package e2e

import (
	"strings"
	"testing"
	"time"
)

// autoscalerTimings shortens Knative's windows so a scale-down and a scale
// to zero fit in seconds: stable window 6s (the smallest Knative allows),
// grace period 2s.
var autoscalerTimings = []string{"stable-window=6s", "scale-to-zero-grace-period=2s", "scale-down-delay=0s"}

// TestAutoscaling drives request-driven autoscaling on one cluster, with
// real containerd: scale to zero after the grace period, wake-up on the
// next request, a burst of 200 at zero, the concurrency hard limit, and a
// load step that scales up and back down without cutting a request.
func TestAutoscaling(t *testing.T) {
	c := startCluster(t)
	st := c.etcdStore()
	c.mustRun(append([]string{"config", "set", "autoscaler"}, autoscalerTimings...)...)

	// Every service is created up front so their scale-to-zero waits overlap.
	c.mustRun("service", "create", "zero", "--image", c.image, "--env", "RESPONSE=zero")
	c.mustRun("service", "create", "burst", "--image", c.image, "--env", "RESPONSE=burst", "--env", "DELAY=100ms")
	c.mustRun("service", "create", "one", "--image", c.image, "--env", "RESPONSE=one", "--env", "DELAY=30ms",
		"--concurrency-limit", "1", "--scale-max", "3")
	c.mustRun("service", "create", "step", "--image", c.image, "--env", "RESPONSE=step",
		"--concurrency-target", "2", "--scale-max", "4")
	c.eventuallyBody("zero.default.example.com", "zero", 10*time.Second)

	t.Run("scale to zero after the grace period", func(t *testing.T) {
		for _, rev := range []string{"zero-00001", "burst-00001"} {
			c.waitFor(rev+" at zero", 60*time.Second, func() bool {
				return readyInstances(st, "default", rev) == 0 && c.containersOf(rev) == 0
			})
		}
	})

	t.Run("the next request wakes it", func(t *testing.T) {
		r := c.hit(httpClient(), "zero.default.example.com", "/")
		if r.err != nil || r.code != 200 || strings.TrimSpace(r.body) != "zero" {
			t.Fatalf("wake-up request: code=%d body=%q err=%v", r.code, r.body, r.err)
		}
		if n := readyInstances(st, "default", "zero-00001"); n < 1 {
			t.Errorf("%d ready instances after the wake-up", n)
		}
	})

	t.Run("a burst of 200 at zero all succeed", func(t *testing.T) {
		if n := readyInstances(st, "default", "burst-00001"); n != 0 {
			t.Fatalf("burst-00001 has %d ready instances, want 0 before the burst", n)
		}
		rs := c.burst("burst.default.example.com", "/", 200)
		if n, some := failures(rs); n > 0 {
			t.Fatalf("%d of 200 requests failed, e.g. %v", n, some)
		}
	})

	t.Run("concurrency limit 1 never lets two requests into one container", func(t *testing.T) {
		rs := c.burst("one.default.example.com", "/", 40)
		if n, some := failures(rs); n > 0 {
			t.Fatalf("%d of 40 requests failed, e.g. %v", n, some)
		}
		for _, r := range rs {
			if r.maxConcurrent != 1 {
				t.Fatalf("a container saw %d requests at once (X-Max-Concurrent), want 1", r.maxConcurrent)
			}
		}
	})

	t.Run("a load step scales up and back down without cutting requests", func(t *testing.T) {
		host := "step.default.example.com"
		// 12 clients holding 300ms each against a target of 2 x 70%: the
		// autoscaler wants well over one instance (capped at 4).
		stop := make(chan struct{})
		high := c.load(host, "/?sleep=300ms", 12, stop)
		peak := 0
		c.waitFor("step scaled up", 60*time.Second, func() bool {
			peak = max(peak, readyInstances(st, "default", "step-00001"))
			return peak >= 2
		})
		close(stop)
		rs := <-high
		// Then a trickle of long requests while it scales back down: the
		// instances that stop have requests in flight and must drain them.
		stop = make(chan struct{})
		low := c.load(host, "/?sleep=1s", 1, stop)
		c.waitFor("step scaled back down", 60*time.Second, func() bool {
			return readyInstances(st, "default", "step-00001") <= 1
		})
		// Give the stopping instances' drains time to end.
		time.Sleep(2 * time.Second)
		close(stop)
		rs = append(rs, <-low...)
		if n, some := failures(rs); n > 0 {
			t.Fatalf("%d of %d requests failed during the step, e.g. %v", n, len(rs), some)
		}
		t.Logf("peak %d instances; %d requests, all answered", peak, len(rs))
	})
}
