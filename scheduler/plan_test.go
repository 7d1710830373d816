package scheduler

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/cluster"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func node(name string, slots int, milliCPU, memMi int64) cluster.Node {
	return cluster.Node{Name: name, MaxInstances: slots, CapacityMilliCPU: milliCPU, CapacityMemoryMiB: memMi}
}

func spec(rev string, milliCPU, memMi int64) cluster.InstanceSpec {
	return cluster.InstanceSpec{Namespace: "default", Revision: rev, Image: "img", Port: 8080, MilliCPU: milliCPU, MemoryMiB: memMi}
}

func placed(inst, nodeName string, sp cluster.InstanceSpec, at time.Time) cluster.Placement {
	return cluster.Placement{Instance: inst, Node: nodeName, Spec: sp, PlacedAt: at}
}

func inst(p cluster.Placement, phase string, ready bool) cluster.Instance {
	return cluster.Instance{Instance: p.Instance, Node: p.Node, Namespace: p.Spec.Namespace, Revision: p.Spec.Revision, Phase: phase, Ready: ready}
}

func key(rev string) RevisionKey { return RevisionKey{"default", rev} }

// summary renders actions as "place rev@node" / "remove inst(reason)",
// sorted, so tests do not depend on generated names.
func summary(d Decision) []string {
	var out []string
	for _, a := range d.Actions {
		if a.Kind == Place {
			out = append(out, "place "+a.Placement.Spec.Revision+"@"+a.Placement.Node)
		} else {
			out = append(out, "remove "+a.Placement.Instance+"("+a.Reason+")")
		}
	}
	slices.Sort(out)
	return out
}

func TestPlan(t *testing.T) {
	a := spec("a", 500, 256)
	old, mid, newest := t0.Add(-3*time.Minute), t0.Add(-2*time.Minute), t0.Add(-time.Minute)
	pa1, pa2, pa3 := placed("a-1", "n1", a, old), placed("a-2", "n2", a, mid), placed("a-3", "n1", a, newest)
	tests := []struct {
		name     string
		snap     Snapshot
		want     []string
		retryAt  time.Time
		unplaced int
	}{
		{
			name: "scale up spreads over nodes",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 4000, 4096), node("n2", 10, 4000, 4096)}},
			want: []string{"place a@n1", "place a@n2"},
		},
		{
			name: "sidecars count against capacity",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): func() cluster.InstanceSpec {
				sp := spec("a", 400, 64)
				sp.Sidecars = []cluster.ContainerSpec{{Name: "side", MilliCPU: 400}}
				return sp
			}()},
				Nodes: []cluster.Node{node("n1", 10, 1000, 4096)}},
			// 800m per instance: the second does not fit in 1000m.
			want:     []string{"place a@n1"},
			unplaced: 1,
		},
		{
			name: "the largest init container bounds the request",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): func() cluster.InstanceSpec {
				sp := spec("a", 100, 64)
				sp.InitContainers = []cluster.ContainerSpec{{Name: "init", MilliCPU: 600}}
				return sp
			}()},
				Nodes: []cluster.Node{node("n1", 10, 1000, 4096)}},
			want:     []string{"place a@n1"},
			unplaced: 1,
		},
		{
			name: "most free room wins",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1, key("b"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a, key("b"): spec("b", 100, 64)},
				Nodes:      []cluster.Node{node("n1", 10, 4000, 4096), node("n2", 10, 4000, 4096)},
				Placements: []cluster.Placement{placed("a-1", "n1", a, old)}},
			want: []string{"place b@n2"},
		},
		{
			name: "removals free room before placing",
			snap: Snapshot{Desired: map[RevisionKey]int{key("b"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a, key("b"): spec("b", 100, 64)},
				Nodes:      []cluster.Node{node("n1", 1, 0, 0)},
				Placements: []cluster.Placement{placed("a-1", "n1", a, old)}},
			// a-1 has no scale key: it goes, and b takes its slot.
			want: []string{"place b@n1", "remove a-1(scale-down)"},
		},
		{
			name: "capacity: cpu limits how many fit",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 5}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 1000, 0)}},
			want:     []string{"place a@n1", "place a@n1"},
			unplaced: 3,
		},
		{
			name: "capacity: slots and memory",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 4}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 1, 0, 0), node("n2", 0, 0, 512)}},
			want:     []string{"place a@n1", "place a@n2", "place a@n2"},
			unplaced: 1,
		},
		{
			name: "steady state does nothing",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0), node("n2", 10, 0, 0)}, Placements: []cluster.Placement{pa1, pa2},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseRunning, true), inst(pa2, cluster.PhaseStarting, false)}},
			want: nil,
		},
		{
			name: "scale down removes not-ready first, then newest",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0), node("n2", 10, 0, 0)}, Placements: []cluster.Placement{pa1, pa2, pa3},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseRunning, true), inst(pa2, cluster.PhaseStarting, false), inst(pa3, cluster.PhaseRunning, true)}},
			want: []string{"remove a-2(scale-down)", "remove a-3(scale-down)"},
		},
		{
			name: "scale down with all ready removes newest",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0), node("n2", 10, 0, 0)}, Placements: []cluster.Placement{pa1, pa2, pa3},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseRunning, true), inst(pa2, cluster.PhaseRunning, true), inst(pa3, cluster.PhaseRunning, true)}},
			want: []string{"remove a-3(scale-down)"},
		},
		{
			name: "dead node: re-place on a live one",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0), node("n3", 10, 0, 0)}, Placements: []cluster.Placement{pa1, pa2}},
			want: []string{"place a@n3", "remove a-2(node-lost)"},
		},
		{
			name: "revision deleted: all placements go",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 2},
				Nodes: []cluster.Node{node("n1", 10, 0, 0), node("n2", 10, 0, 0)}, Placements: []cluster.Placement{pa1, pa2}},
			want: []string{"remove a-1(revision-gone)", "remove a-2(revision-gone)"},
		},
		{
			name: "no live node",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a}},
			want: nil, unplaced: 1,
		},
		{
			name: "first failure is replaced at once",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0)}, Placements: []cluster.Placement{pa1},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseFailed, false)}, Policy: DefaultPolicy},
			want: []string{"place a@n1", "remove a-1(failed)"},
		},
		{
			name: "repeated failure waits out its backoff",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0)}, Placements: []cluster.Placement{pa1},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseFailed, false)}, Policy: DefaultPolicy,
				Failures: map[RevisionKey]Failures{key("a"): {Count: 3, Last: t0.Add(-time.Second)}}},
			want:    nil,
			retryAt: t0.Add(3 * time.Second), // 1s doubled twice after the last at t0-1s
		},
		{
			name: "backoff over: replaced",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0)}, Placements: []cluster.Placement{pa1},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseFailed, false)}, Policy: DefaultPolicy,
				Failures: map[RevisionKey]Failures{key("a"): {Count: 3, Last: t0.Add(-4 * time.Second)}}},
			want: []string{"place a@n1", "remove a-1(failed)"},
		},
		{
			name: "failure limit reached: left in place, no retry",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 1}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0)}, Placements: []cluster.Placement{pa1},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseFailed, false)}, Policy: DefaultPolicy,
				Failures: map[RevisionKey]Failures{key("a"): {Count: 10, Last: t0.Add(-time.Hour)}}},
			want: nil,
		},
		{
			name: "failed instance goes first on scale to zero",
			snap: Snapshot{Desired: map[RevisionKey]int{key("a"): 0}, Specs: map[RevisionKey]cluster.InstanceSpec{key("a"): a},
				Nodes: []cluster.Node{node("n1", 10, 0, 0)}, Placements: []cluster.Placement{pa1},
				Instances: []cluster.Instance{inst(pa1, cluster.PhaseFailed, false)}, Policy: DefaultPolicy,
				Failures: map[RevisionKey]Failures{key("a"): {Count: 10, Last: t0}}},
			want: []string{"remove a-1(scale-down)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Plan(tc.snap, t0)
			if got := summary(d); !slices.Equal(got, tc.want) {
				t.Errorf("actions = %q, want %q", got, tc.want)
			}
			if !d.RetryAt.Equal(tc.retryAt) {
				t.Errorf("RetryAt = %v, want %v", d.RetryAt, tc.retryAt)
			}
			if got := d.Unplaced[key("a")]; got != tc.unplaced {
				t.Errorf("unplaced = %d, want %d", got, tc.unplaced)
			}
			for i, a := range d.Actions {
				if a.Kind == Remove {
					if i > 0 && d.Actions[i-1].Kind == Place {
						t.Errorf("remove after place: %v", summary(d))
					}
				}
			}
		})
	}
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func TestInstanceName(t *testing.T) {
	seen := map[string]bool{}
	for _, rev := range []string{"hello-00001", strings.Repeat("x", 63), strings.Repeat("y", 56) + "-z"} {
		for seq := range uint64(200) {
			n := InstanceName(rev, 42, seq)
			if !labelRE.MatchString(n) {
				t.Fatalf("%q is not a DNS label", n)
			}
			if !regexp.MustCompile(`-[a-z0-9]{5}$`).MatchString(n) {
				t.Fatalf("%q lacks a 5-char suffix", n)
			}
			if seen[n] {
				t.Fatalf("duplicate name %q", n)
			}
			seen[n] = true
		}
	}
	if InstanceName("r", 1, 0) == InstanceName("r", 2, 0) {
		t.Error("different seeds gave the same name")
	}
}

// randomSnapshot builds a cluster with random nodes, revisions, desired
// scales and existing placements that respect capacity on live nodes (and
// some on dead nodes).
func randomSnapshot(r *rand.Rand) Snapshot {
	s := Snapshot{Desired: map[RevisionKey]int{}, Specs: map[RevisionKey]cluster.InstanceSpec{}, Seed: r.Uint64(), Policy: DefaultPolicy}
	for i := range 1 + r.IntN(5) {
		s.Nodes = append(s.Nodes, node(fmt.Sprintf("n%d", i), r.IntN(6), int64(r.IntN(4))*1000, int64(r.IntN(3))*1024))
	}
	dead := []cluster.Node{node("dead1", 0, 0, 0), node("dead2", 0, 0, 0)}
	var specs []cluster.InstanceSpec
	for i := range 1 + r.IntN(5) {
		sp := spec(fmt.Sprintf("r%d", i), int64(r.IntN(3))*250, int64(r.IntN(3))*256)
		specs = append(specs, sp)
		if r.IntN(6) > 0 { // sometimes the revision is gone
			s.Specs[key(sp.Revision)] = sp
		}
		if r.IntN(4) > 0 {
			s.Desired[key(sp.Revision)] = r.IntN(6)
		}
	}
	rooms := map[string]*nodeRoom{}
	for _, n := range s.Nodes {
		rooms[n.Name] = &nodeRoom{node: n, perRev: map[RevisionKey]int{}}
	}
	for i := range r.IntN(12) {
		sp := specs[r.IntN(len(specs))]
		var n cluster.Node
		if r.IntN(5) == 0 {
			n = dead[r.IntN(2)]
		} else {
			n = s.Nodes[r.IntN(len(s.Nodes))]
			if !rooms[n.Name].fits(sp) {
				continue
			}
			rooms[n.Name].add(key(sp.Revision), sp, 1)
		}
		p := placed(fmt.Sprintf("%s-p%d", sp.Revision, i), n.Name, sp, t0.Add(time.Duration(-i)*time.Minute))
		s.Placements = append(s.Placements, p)
		switch r.IntN(4) {
		case 0:
		case 1:
			s.Instances = append(s.Instances, inst(p, cluster.PhaseStarting, false))
		default:
			s.Instances = append(s.Instances, inst(p, cluster.PhaseRunning, true))
		}
	}
	return s
}

// applyDecision returns s with d's writes made, as the agents would
// observe them (new instances not yet reported).
func applyDecision(s Snapshot, d Decision) Snapshot {
	gone := map[string]bool{}
	for _, a := range d.Actions {
		if a.Kind == Remove {
			gone[a.Placement.Instance] = true
		}
	}
	out := s
	out.Placements = nil
	for _, p := range s.Placements {
		if !gone[p.Instance] {
			out.Placements = append(out.Placements, p)
		}
	}
	for _, a := range d.Actions {
		if a.Kind == Place {
			out.Placements = append(out.Placements, a.Placement)
		}
	}
	out.Seed++
	return out
}

func TestPlanProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		s := randomSnapshot(r)
		d := Plan(s, t0)
		after := applyDecision(s, d)
		live := map[string]cluster.Node{}
		for _, n := range s.Nodes {
			live[n.Name] = n
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("iteration %d: "+format+"\nsnapshot: %+v\nactions: %v", append(append([]any{iter}, args...), s, summary(d))...)
		}
		// Never place on a dead node; names are unique.
		names := map[string]bool{}
		for _, p := range s.Placements {
			names[p.Instance] = true
		}
		for _, a := range d.Actions {
			if a.Kind != Place {
				continue
			}
			if _, ok := live[a.Placement.Node]; !ok {
				fail("placed on dead node %s", a.Placement.Node)
			}
			if names[a.Placement.Instance] {
				fail("reused instance name %s", a.Placement.Instance)
			}
			names[a.Placement.Instance] = true
		}
		// Never exceed a node's capacity.
		rooms := map[string]*nodeRoom{}
		for _, n := range s.Nodes {
			rooms[n.Name] = &nodeRoom{node: n, perRev: map[RevisionKey]int{}}
		}
		for _, p := range after.Placements {
			if rm := rooms[p.Node]; rm != nil {
				rm.add(key(p.Spec.Revision), p.Spec, 1)
			}
		}
		for name, rm := range rooms {
			n := rm.node
			if (n.MaxInstances > 0 && rm.used > n.MaxInstances) ||
				(n.CapacityMilliCPU > 0 && rm.milliCPU > n.CapacityMilliCPU) ||
				(n.CapacityMemoryMiB > 0 && rm.memoryMi > n.CapacityMemoryMiB) {
				fail("node %s over capacity: %+v", name, *rm)
			}
		}
		// Converges: each revision has its desired count on live nodes, or
		// fewer only when Plan reported instances it could not place.
		count := map[RevisionKey]int{}
		for _, p := range after.Placements {
			if _, ok := live[p.Node]; !ok {
				fail("placement %s left on dead node", p.Instance)
			}
			count[key(p.Spec.Revision)]++
		}
		for k := range s.Specs {
			want := s.Desired[k]
			if got := count[k] + d.Unplaced[k]; got != want {
				fail("revision %s: %d placed + %d unplaced, want %d", k, count[k], d.Unplaced[k], want)
			}
		}
		for k, n := range count {
			if _, ok := s.Specs[k]; !ok {
				fail("revision %s is gone but keeps %d placements", k, n)
			}
		}
		// Idempotent: planning the applied result changes nothing.
		if again := Plan(after, t0.Add(time.Second)); len(again.Actions) != 0 {
			fail("second plan not empty: %v", summary(again))
		}
	}
}

// When capacity allows everything, every revision gets exactly its desired
// count and a revision's instances spread one per node while nodes last.
func TestPlanSpreads(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		nNodes := 1 + r.IntN(5)
		s := Snapshot{Desired: map[RevisionKey]int{}, Specs: map[RevisionKey]cluster.InstanceSpec{}, Seed: r.Uint64()}
		for i := range nNodes {
			s.Nodes = append(s.Nodes, node(fmt.Sprintf("n%d", i), 0, 0, 0))
		}
		want := r.IntN(12)
		s.Desired[key("a")] = want
		s.Specs[key("a")] = spec("a", 100, 100)
		d := Plan(s, t0)
		if len(d.Actions) != want {
			t.Fatalf("%d actions, want %d", len(d.Actions), want)
		}
		per := map[string]int{}
		for _, a := range d.Actions {
			per[a.Placement.Node]++
		}
		lo, hi := want, 0
		for _, n := range s.Nodes {
			lo, hi = min(lo, per[n.Name]), max(hi, per[n.Name])
		}
		if hi-lo > 1 {
			t.Fatalf("uneven spread of %d over %d nodes: %v", want, nNodes, per)
		}
	}
}
