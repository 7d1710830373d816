package scheduler

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/internal/cluster"
)

// RevisionKey names a revision.
type RevisionKey struct{ Namespace, Name string }

func (k RevisionKey) String() string { return k.Namespace + "/" + k.Name }

// Failures is a revision's run of replaced failed instances. The leader loop
// counts a failure when it removes a Failed instance's placement and resets
// the run when any instance of the revision is Ready.
type Failures struct {
	Count int       // consecutive failed instances replaced
	Last  time.Time // when the last one was replaced
}

// Policy bounds how failed instances are replaced.
type Policy struct {
	// Backoff is the wait before replacing the second failure in a run;
	// it doubles for each further failure up to MaxBackoff. The first
	// failure is replaced at once.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxFailures: after this many consecutive replaced failures the
	// revision's failed placements are left in place (the agent keeps
	// reporting why) and not replaced again until an instance becomes
	// Ready, the scale changes to 0, or the leader changes. 0 = never give up.
	MaxFailures int
}

// DefaultPolicy is 1s doubling to 5m, giving up after 10 failures in a row.
var DefaultPolicy = Policy{Backoff: time.Second, MaxBackoff: 5 * time.Minute, MaxFailures: 10}

// retryAt is when a failed instance of a revision with run f may be
// replaced, and false when it never will (the run hit the limit).
func (p Policy) retryAt(f Failures) (time.Time, bool) {
	if p.MaxFailures > 0 && f.Count >= p.MaxFailures {
		return time.Time{}, false
	}
	if f.Count == 0 {
		return time.Time{}, true
	}
	d := p.Backoff
	for i := 1; i < f.Count && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return f.Last.Add(min(d, p.MaxBackoff)), true
}

// Snapshot is everything Plan looks at. Plan never mutates it.
type Snapshot struct {
	// Desired instance count per revision (scale/). Missing means 0.
	Desired map[RevisionKey]int
	// Specs of the revisions that exist and can run (registry). A revision
	// missing here has all its placements removed.
	Specs map[RevisionKey]cluster.InstanceSpec
	// Nodes are the live nodes (nodes/, on the agents' leases).
	Nodes []cluster.Node
	// Placements are all current placements (placements/).
	Placements []cluster.Placement
	// Instances are the observed instances (instances/).
	Instances []cluster.Instance
	// Failures per revision; see Failures.
	Failures map[RevisionKey]Failures
	Policy   Policy
	// Seed makes new instance names; the loop passes a fresh random value
	// so names differ across runs while Plan stays deterministic.
	Seed uint64
}

// ActionKind is what an Action does.
type ActionKind int

const (
	// Place creates placements/<node>/<instance>.
	Place ActionKind = iota
	// Remove deletes placements/<node>/<instance>.
	Remove
)

func (k ActionKind) String() string {
	if k == Place {
		return "place"
	}
	return "remove"
}

// Reasons an action is taken.
const (
	ReasonScaleUp      = "scale-up"
	ReasonScaleDown    = "scale-down"
	ReasonNodeLost     = "node-lost"
	ReasonFailed       = "failed"
	ReasonRevisionGone = "revision-gone"
)

// Action is one write the leader loop makes.
type Action struct {
	Kind      ActionKind
	Placement cluster.Placement
	Reason    string
}

// Decision is Plan's answer.
type Decision struct {
	// Actions in order: every Remove before any Place, so freed room is
	// real before it is reused.
	Actions []Action
	// RetryAt, when not zero, is the earliest time a failed instance
	// waiting out its backoff may be replaced; the loop plans again then.
	RetryAt time.Time
	// Unplaced counts instances per revision that fit on no live node.
	Unplaced map[RevisionKey]int
}

// nodeRoom is a live node's capacity and what its placements use.
type nodeRoom struct {
	node               cluster.Node
	used               int
	milliCPU, memoryMi int64
	perRev             map[RevisionKey]int
}

func (n *nodeRoom) fits(s cluster.InstanceSpec) bool {
	if n.node.MaxInstances > 0 && n.used+1 > n.node.MaxInstances {
		return false
	}
	cpu, mem := s.PodRequests()
	if n.node.CapacityMilliCPU > 0 && n.milliCPU+cpu > n.node.CapacityMilliCPU {
		return false
	}
	if n.node.CapacityMemoryMiB > 0 && n.memoryMi+mem > n.node.CapacityMemoryMiB {
		return false
	}
	return true
}

// free is the fraction of the node's scarcest limited resource left after
// placing s; 1 when nothing is limited.
func (n *nodeRoom) free(s cluster.InstanceSpec) float64 {
	f := 1.0
	frac := func(capacity, used int64) {
		if capacity > 0 {
			f = min(f, float64(capacity-used)/float64(capacity))
		}
	}
	cpu, mem := s.PodRequests()
	frac(int64(n.node.MaxInstances), int64(n.used+1))
	frac(n.node.CapacityMilliCPU, n.milliCPU+cpu)
	frac(n.node.CapacityMemoryMiB, n.memoryMi+mem)
	return f
}

func (n *nodeRoom) add(k RevisionKey, s cluster.InstanceSpec, sign int) {
	cpu, mem := s.PodRequests()
	n.used += sign
	n.milliCPU += int64(sign) * cpu
	n.memoryMi += int64(sign) * mem
	n.perRev[k] += sign
}

// Plan decides which placements to create and remove so that every
// revision runs its desired number of instances on live nodes within their
// capacity. It is a pure function of s and now.
func Plan(s Snapshot, now time.Time) Decision {
	var d Decision
	nodes := map[string]*nodeRoom{}
	for _, n := range s.Nodes {
		nodes[n.Name] = &nodeRoom{node: n, perRev: map[RevisionKey]int{}}
	}
	type instKey struct{ node, name string }
	observed := map[instKey]cluster.Instance{}
	taken := map[string]bool{} // instance names in use anywhere
	for _, in := range s.Instances {
		observed[instKey{in.Node, in.Instance}] = in
		taken[in.Instance] = true
	}
	byRev := map[RevisionKey][]cluster.Placement{}
	for _, p := range s.Placements {
		k := RevisionKey{p.Spec.Namespace, p.Spec.Revision}
		byRev[k] = append(byRev[k], p)
		taken[p.Instance] = true
		if n := nodes[p.Node]; n != nil {
			n.add(k, p.Spec, 1)
		}
	}
	keys := make([]RevisionKey, 0, len(byRev)+len(s.Desired))
	for k := range byRev {
		keys = append(keys, k)
	}
	for k := range s.Desired {
		if _, ok := byRev[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b RevisionKey) int { return cmp.Compare(a.String(), b.String()) })

	remove := func(k RevisionKey, p cluster.Placement, reason string) {
		d.Actions = append(d.Actions, Action{Kind: Remove, Placement: p, Reason: reason})
		if n := nodes[p.Node]; n != nil {
			n.add(k, p.Spec, -1)
		}
	}
	type need struct {
		key  RevisionKey
		spec cluster.InstanceSpec
		n    int
	}
	var needs []need
	for _, k := range keys {
		spec, exists := s.Specs[k]
		desired := s.Desired[k]
		if !exists {
			desired = 0
		}
		// kept are the placements that count towards desired, in the
		// order they should go on scale-down.
		type kept struct {
			p     cluster.Placement
			class int // 0 failed, 1 not ready, 2 ready
		}
		var keep []kept
		for _, p := range byRev[k] {
			switch in, seen := observed[instKey{p.Node, p.Instance}]; {
			case !exists:
				remove(k, p, ReasonRevisionGone)
			case nodes[p.Node] == nil:
				remove(k, p, ReasonNodeLost)
			case seen && in.Phase == cluster.PhaseFailed:
				at, ok := s.Policy.retryAt(s.Failures[k])
				if ok && !now.Before(at) && desired > 0 {
					remove(k, p, ReasonFailed)
					continue
				}
				if ok && desired > 0 && (d.RetryAt.IsZero() || at.Before(d.RetryAt)) {
					d.RetryAt = at
				}
				keep = append(keep, kept{p, 0})
			case seen && in.Ready:
				keep = append(keep, kept{p, 2})
			default:
				keep = append(keep, kept{p, 1})
			}
		}
		if len(keep) > desired {
			slices.SortFunc(keep, func(a, b kept) int {
				if c := cmp.Compare(a.class, b.class); c != 0 {
					return c
				}
				if c := b.p.PlacedAt.Compare(a.p.PlacedAt); c != 0 {
					return c // newest first
				}
				return cmp.Compare(a.p.Instance, b.p.Instance)
			})
			for _, kp := range keep[:len(keep)-desired] {
				remove(k, kp.p, ReasonScaleDown)
			}
		}
		if n := desired - len(keep); n > 0 {
			needs = append(needs, need{k, spec, n})
		}
	}

	var seq uint64
	for _, nd := range needs {
		for range nd.n {
			best := bestNode(nodes, nd.key, nd.spec)
			if best == nil {
				if d.Unplaced == nil {
					d.Unplaced = map[RevisionKey]int{}
				}
				d.Unplaced[nd.key]++
				continue
			}
			var name string
			for name == "" || taken[name] {
				name = InstanceName(nd.key.Name, s.Seed, seq)
				seq++
			}
			taken[name] = true
			best.add(nd.key, nd.spec, 1)
			d.Actions = append(d.Actions, Action{Kind: Place, Reason: ReasonScaleUp, Placement: cluster.Placement{
				Instance: name, Node: best.node.Name, Spec: nd.spec, PlacedAt: now,
			}})
		}
	}
	return d
}

// bestNode picks where the next instance of k goes: among nodes it fits on,
// the one running fewest of k's instances (spread), then the one with the
// most room left, then by name so the choice is deterministic.
func bestNode(nodes map[string]*nodeRoom, k RevisionKey, s cluster.InstanceSpec) *nodeRoom {
	var best *nodeRoom
	var bestFree float64
	for _, n := range nodes {
		if !n.fits(s) {
			continue
		}
		f := n.free(s)
		if best == nil {
			best, bestFree = n, f
			continue
		}
		if c := cmp.Compare(n.perRev[k], best.perRev[k]); c != 0 {
			if c < 0 {
				best, bestFree = n, f
			}
			continue
		}
		if f != bestFree {
			if f > bestFree {
				best, bestFree = n, f
			}
			continue
		}
		if n.node.Name < best.node.Name {
			best, bestFree = n, f
		}
	}
	return best
}

const nameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// maxRevisionPart keeps "<revision>-<5 chars>" within a 63-byte DNS label.
const maxRevisionPart = 63 - 6

// InstanceName derives the name of a new instance of revision from seed and
// seq: "<revision>-<5 lowercase alphanumerics>", a valid DNS label and
// containerd ID. The revision part is cut to keep the label within 63 bytes.
func InstanceName(revision string, seed, seq uint64) string {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], seq)
	h.Write(b[:])
	h.Write([]byte(revision))
	v := h.Sum64()
	var suffix [5]byte
	for i := range suffix {
		suffix[i] = nameAlphabet[v%uint64(len(nameAlphabet))]
		v /= uint64(len(nameAlphabet))
	}
	if len(revision) > maxRevisionPart {
		revision = strings.TrimRight(revision[:maxRevisionPart], "-.")
	}
	return revision + "-" + string(suffix[:])
}
