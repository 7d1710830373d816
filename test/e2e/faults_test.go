package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// fault is one process killed (SIGKILL) under steady load.
type fault struct {
	name string
	// victim picks the process to kill.
	victim func(fc *faultCluster) (string, error)
	// restartAfter is when the killed process starts again: 0 once the
	// update made during the fault converged, > 0 that long after the
	// kill, < 0 never (the node is lost).
	restartAfter time.Duration
	// leader, when set, is the role whose next leader is timed.
	leader string
	// wholeNode: the victim, an agent, dies with its node: every
	// queue-proxy and container of the node is killed at the same moment.
	// Only requests in flight at that moment may fail.
	wholeNode bool
}

func named(name string) func(*faultCluster) (string, error) {
	return func(*faultCluster) (string, error) { return name, nil }
}

func leaderOf(role string) func(*faultCluster) (string, error) {
	return func(fc *faultCluster) (string, error) { return fc.leaderProc(role) }
}

// faultRow is one line of the suite's table.
type faultRow struct {
	fault, killed         string
	sent, failed, skipped int64
	// inFlight of the failures are of requests in flight when a whole
	// node died.
	inFlight int
	timings  string
}

// TestFaults: kill -9 of any one process of any role, under steady load
// through the gateway to a Service served straight by its instances and one
// with the activator always in its path, fails no request, and a Service
// update made during the fault converges. Each fault hits a whole, warm
// cluster (three etcd members, two of every role, three agents): the killed
// process is started again and the cluster is whole before the next one,
// except two left dead, whose instances are re-placed on the nodes left: a
// whole node lost at once (agent, queue-proxies and containers), which fails
// only requests in flight at that moment, and last an agent alone. Timings
// are printed, never asserted.
func TestFaults(t *testing.T) {
	fc := startFaultCluster(t)
	// One instance of each service per node (the scheduler spreads a
	// revision's instances), so the node lost holds some of both.
	const minScale = 3
	services := map[string][]string{
		// Served straight by its instances: with no burst capacity asked
		// for, the activator leaves its path once instances are ready.
		"direct": {"--annotation", "autoscaling.knative.dev/target-burst-capacity=0"},
		// The activator stays in this one's path, so killing one matters.
		"buffered": {"--annotation", "autoscaling.knative.dev/target-burst-capacity=-1"},
	}
	bodies := map[string]string{}
	var wg sync.WaitGroup
	for name, extra := range services {
		bodies[name+".default.example.com"] = name + ":start"
		wg.Go(func() {
			args := append([]string{"service", "create", name, "--image", fc.image, "--env", "RESPONSE=" + name + ":start",
				"--scale-min", fmt.Sprint(minScale)}, extra...)
			if out, err := fc.run(args...); err != nil {
				t.Errorf("kiln %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	allNodes := fc.nodes
	if err := waitUntil(3*time.Minute, func() error { return fc.whole(allNodes, bodies, minScale) }); err != nil {
		t.Fatalf("cluster never whole: %v", err)
	}
	fc.logPlacement(t, "before the faults")

	const rate, hold = 50, 100 * time.Millisecond
	load := startSteadyLoad(fc.gateway, bodies, rate, 64, hold)
	defer load.halt()
	fc.load = load
	time.Sleep(5 * time.Second) // warm: connections, the activator's view
	var rows []faultRow
	row := func(w *loadWindow, fault, killed string, inFlight int, timings string) faultRow {
		r := faultRow{fault: fault, killed: killed, sent: w.sent.Load(), failed: w.failed.Load(), skipped: w.skipped.Load(),
			inFlight: inFlight, timings: timings}
		rows = append(rows, r)
		return r
	}
	if w := load.window("baseline"); row(w, "(no fault)", "", 0, "").failed > 0 {
		_, first := w.samples(nil)
		t.Errorf("without any fault %d of %d requests failed, first: %s", w.failed.Load(), w.sent.Load(), strings.Join(first, "; "))
	}

	faults := []fault{
		{name: "activator", victim: named("activator-1")},
		{name: "xds", victim: named("xds-1")},
		{name: "apiserver", victim: named("apiserver-1")},
		{name: "controller-leader", victim: leaderOf("controller"), leader: "controller"},
		{name: "scheduler-leader", victim: leaderOf("scheduler"), leader: "scheduler"},
		{name: "autoscaler-leader", victim: leaderOf("autoscaler"), leader: "autoscaler"},
		{name: "etcd-member", victim: func(fc *faultCluster) (string, error) { return fc.etcdLeader() }},
		{name: "agent-restarted", victim: named("agent-node-1"), restartAfter: time.Second},
		{name: "node-lost", victim: named("agent-node-3"), restartAfter: -1, wholeNode: true},
		{name: "agent-dead", victim: named("agent-node-2"), restartAfter: -1},
	}
	// live are the nodes whose agent runs (or is started again).
	live := slices.Clone(allNodes)
	for _, f := range faults {
		ok := t.Run(f.name, func(t *testing.T) {
			victim, err := f.victim(fc)
			if err != nil {
				t.Fatalf("pick the process to kill: %v", err)
			}
			if f.wholeNode {
				fc.logPlacement(t, "before "+f.name)
				fc.requireOn(t, strings.TrimPrefix(victim, "agent-"))
			}
			if f.restartAfter < 0 {
				live = slices.DeleteFunc(live, func(n string) bool { return n == strings.TrimPrefix(victim, "agent-") })
			}
			o := fc.inflict(t, f, victim, bodies, live, minScale)
			// Late failures (a stale endpoint, a lease running out) still
			// count for this fault.
			time.Sleep(3 * time.Second)
			w := load.window("after " + f.name)
			if !f.wholeNode {
				r := row(w, f.name, victim, 0, o.timings)
				t.Logf("%s: killed %s; %d requests, %d failed; %s", f.name, victim, r.sent, r.failed, o.timings)
				if r.failed > 0 {
					_, first := w.samples(nil)
					t.Errorf("kill -9 of %s failed %d of %d requests, first: %s", victim, r.failed, r.sent, strings.Join(first, "; "))
				}
				return
			}
			// In flight when the node died: started before all of it was
			// gone, not failed before the first kill.
			inFlight := func(lf loadFailure) bool { return lf.start.Before(o.killEnd) && !lf.end.Before(o.killStart) }
			nIn, firstIn := w.samples(inFlight)
			nOther, firstOther := w.samples(func(lf loadFailure) bool { return !inFlight(lf) })
			r := row(w, f.name, strings.TrimPrefix(victim, "agent-")+" whole", nIn, o.timings)
			t.Logf("%s: killed %s (%s); %d requests, %d failed, %d of them in flight at the kill %v; %s", f.name,
				strings.TrimPrefix(victim, "agent-"), o.killed, r.sent, r.failed, nIn, firstIn, o.timings)
			if nOther > 0 {
				t.Errorf("losing %s failed %d requests not in flight at the kill (window from %s, kill at +%.1fs), first: %s", victim, nOther,
					w.start.Format("15:04:05.000"), o.killStart.Sub(w.start).Seconds(), strings.Join(firstOther, "; "))
			}
		})
		if !ok && waitUntil(time.Minute, func() error { return fc.whole(live, bodies, minScale) }) != nil {
			// Only go on with a whole cluster: later faults must not pay
			// for an earlier one.
			t.Errorf("cluster not whole after %s; later faults skipped", f.name)
			break
		}
	}
	fc.logPlacement(t, "after the faults")
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tkilled\tsent\tfailed\t(in flight)\tskipped\ttimings")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.fault, r.killed, r.sent, r.failed, r.inFlight, r.skipped, r.timings)
	}
	tw.Flush()
	t.Logf("kill -9 under %d req/s (each held %v) to each of %d services:\n%s", rate, hold, len(services), b.String())
}

// requireOn fails t unless node runs a ready instance of every service's
// latest revision.
func (fc *faultCluster) requireOn(t *testing.T, node string) {
	for _, svc := range []string{"direct", "buffered"} {
		rev, err := fc.latestReady(svc)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := fc.placement(rev)
		if err != nil {
			t.Fatal(err)
		}
		if pl[node] == 0 {
			t.Errorf("%s (%s) has no ready instance on %s (%s): its loss would test nothing", svc, rev, node, describePlacement(pl))
		}
	}
}

// outcome is what inflict measured.
type outcome struct {
	timings string
	// killStart and killEnd bound the kill (for a whole node, several).
	killStart, killEnd time.Time
	// killed says what a whole node's kill hit and how long it took.
	killed string
}

// inflict kills victim (with its node when f says so), updates every
// service at once, measures what f asks for, brings the victim back as f
// says and waits until the cluster is whole on nodes. Timings are measured
// from the kill. The load's window of the fault runs from the end of the
// previous one (nothing between two faults goes uncounted) to a few seconds
// after the cluster is whole again.
func (fc *faultCluster) inflict(t *testing.T, f fault, victim string, bodies map[string]string, nodes []string, minScale int) outcome {
	var mu sync.Mutex
	var timings []string
	note := func(what string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		timings = append(timings, fmt.Sprintf("%s %.1fs", what, d.Seconds()))
	}
	var wg sync.WaitGroup
	var o outcome
	o.killStart = time.Now()
	if f.wholeNode {
		what, at, sent, err := fc.killNode(strings.TrimPrefix(victim, "agent-"))
		if err != nil {
			t.Errorf("kill %s whole: %v", victim, err)
		}
		if !at.IsZero() {
			o.killStart = at
			o.killed = fmt.Sprintf("%s; SIGKILLs sent in %v, all gone after %v", what, sent.Sub(at).Round(time.Microsecond),
				time.Since(at).Round(time.Millisecond))
		}
	} else {
		fc.kill(victim)
	}
	o.killEnd = time.Now()
	start := o.killStart
	if f.restartAfter > 0 {
		time.Sleep(f.restartAfter)
		if err := fc.restart(victim); err != nil {
			t.Error(err)
		}
	}
	if f.leader != "" {
		wg.Go(func() {
			err := waitUntil(30*time.Second, func() error {
				p, err := fc.leaderProc(f.leader)
				if err != nil {
					return err
				}
				if p == victim {
					return fmt.Errorf("%s still leads", victim)
				}
				return nil
			})
			if err != nil {
				t.Errorf("no new %s leader: %v", f.leader, err)
				return
			}
			note("new leader", time.Since(start))
		})
	}
	if strings.HasPrefix(victim, "etcd-") {
		wg.Go(func() {
			err := waitUntil(30*time.Second, func() error {
				l, err := fc.etcdLeader()
				if err == nil && l == victim {
					return fmt.Errorf("%s still leads", victim)
				}
				return err
			})
			if err != nil {
				t.Errorf("no new etcd leader: %v", err)
				return
			}
			note("new etcd leader", time.Since(start))
		})
	}
	if f.restartAfter < 0 {
		node := strings.TrimPrefix(victim, "agent-")
		wg.Go(func() {
			err := waitUntil(60*time.Second, func() error {
				n, err := fc.nodeInstances(node)
				if err == nil && n > 0 {
					return fmt.Errorf("%d instances still on %s", n, node)
				}
				return err
			})
			if err != nil {
				t.Errorf("%s's instances never vanished: %v", node, err)
				return
			}
			note(node+" instances gone", time.Since(start))
		})
		if !f.wholeNode {
			// Fencing: the dead agent's queue-proxies, left serving, stop
			// once no agent has called them for the node lease, and stop
			// their instances' containers.
			wg.Go(func() {
				err := waitUntil(60*time.Second, func() error {
					if pids := pidsNaming(fc.stateDir(node)); len(pids) > 0 {
						return fmt.Errorf("processes of %s still run: %v", node, pids)
					}
					if n, err := fc.runningTasks(node); err != nil || n > 0 {
						return fmt.Errorf("%d tasks of %s still run (%v)", n, node, err)
					}
					return nil
				})
				if err != nil {
					t.Errorf("%s's queue-proxies never fenced themselves: %v", node, err)
					return
				}
				note(node+" queue-proxies and containers fenced", time.Since(start))
			})
		}
		for _, svc := range []string{"direct", "buffered"} {
			wg.Go(func() {
				// Re-placed: minScale ready instances of the latest ready
				// revision (the one before the update or after) on nodes.
				err := waitUntil(2*time.Minute, func() error {
					rev, err := fc.latestReady(svc)
					if err != nil {
						return err
					}
					pl, err := fc.placement(rev)
					if err == nil && readyOn(pl, nodes) < minScale {
						err = fmt.Errorf("%s: %s", rev, describePlacement(pl))
					}
					return err
				})
				if err != nil {
					t.Errorf("%s never re-placed on %v: %v", svc, nodes, err)
					return
				}
				note(svc+" re-placed", time.Since(start))
			})
		}
	}
	var hosts []string
	for host := range bodies {
		hosts = append(hosts, host)
	}
	for _, host := range hosts {
		svc := strings.SplitN(host, ".", 2)[0]
		body := svc + ":" + f.name
		fc.load.alsoAccept(host, body)
		wg.Go(func() {
			if out, err := fc.run("service", "update", svc, "--env", "RESPONSE="+body, "--no-wait"); err != nil {
				t.Errorf("update %s during the fault: %v\n%s", svc, err, out)
				return
			}
			err := waitUntil(2*time.Minute, func() error {
				code, got, err := fc.get(host)
				if err != nil || code != 200 || strings.TrimSpace(got) != body {
					return fmt.Errorf("%s answers %d %q (%v), want %q", host, code, got, err, body)
				}
				return nil
			})
			if err != nil {
				t.Errorf("update of %s made during the fault never converged: %v", svc, err)
				return
			}
			note(svc+" updated", time.Since(start))
			mu.Lock()
			bodies[host] = body
			mu.Unlock()
		})
	}
	wg.Wait()
	if f.restartAfter == 0 {
		if err := fc.restart(victim); err != nil {
			t.Error(err)
		}
	}
	if err := waitUntil(2*time.Minute, func() error { return fc.whole(nodes, bodies, minScale) }); err != nil {
		t.Errorf("cluster not whole again after %s: %v", f.name, err)
	} else {
		note("whole", time.Since(start))
	}
	if f.restartAfter < 0 {
		// Re-placed: the latest revisions run minScale ready instances on
		// the nodes left (whole checked the total).
		for _, host := range hosts {
			svc := strings.SplitN(host, ".", 2)[0]
			if rev, err := fc.latestReady(svc); err == nil {
				if pl, err := fc.placement(rev); err == nil {
					mu.Lock()
					timings = append(timings, svc+" on "+describePlacement(pl))
					mu.Unlock()
				}
			}
		}
	}
	o.timings = strings.Join(timings, ", ")
	return o
}

// logPlacement prints where each service's latest revision runs.
func (fc *faultCluster) logPlacement(t *testing.T, when string) {
	for _, svc := range []string{"direct", "buffered"} {
		rev, err := fc.latestReady(svc)
		if err != nil {
			t.Logf("%s: %s: %v", when, svc, err)
			continue
		}
		pl, err := fc.placement(rev)
		t.Logf("%s: %s (%s) ready instances per node: %s %v", when, svc, rev, describePlacement(pl), errOrEmpty(err))
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
