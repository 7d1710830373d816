package agent

import (
	"slices"
	"strings"

	"github.com/kiln-serving/kiln/agent/runtime"
)

// actions is what it takes to make the node run exactly its placements.
type actions struct {
	// Remove lists containers that neither a placement nor a live worker
	// accounts for: left by an earlier agent for a placement since deleted.
	Remove []runtime.Container
	// Adopt lists, by container ID, the containers an earlier agent left for
	// placed instances that have no worker yet. Whether a container can
	// really be adopted (task running, same revision and network mode) is
	// the worker's to find out; if not, it recreates the instance.
	Adopt []runtime.Container
	// Start lists placed instances with neither a worker nor a container.
	Start []string
	// Stop lists instances whose worker runs but whose placement is gone:
	// their instance is torn down.
	Stop []string
}

// plan compares the instances placed on this node with what runs on it:
// the instances with a live worker (one not already stopping) and the
// containers found in containerd, which the agent lists only when it
// starts (nil afterwards). A container belongs to an instance by its
// labelInstance label (the serving container; see instanceOf) or by its labelPod label (sidecars and init
// containers, which their instance's worker adopts or removes). It does no
// I/O; every list it returns is sorted.
func plan(placed, live []string, found []runtime.Container) actions {
	isPlaced := setOf(placed)
	isLive := setOf(live)
	var do actions
	adopting := map[string]bool{}
	for _, c := range found {
		pod := c.Labels[labelPod]
		inst := ""
		if pod == "" {
			inst = instanceOf(c)
		}
		switch {
		case isLive[inst] || isLive[pod]:
			// Its worker owns it.
		case isPlaced[inst]:
			do.Adopt = append(do.Adopt, c)
			adopting[inst] = true
		case isPlaced[c.Labels[labelPod]]:
			// A sidecar or init container of an instance being adopted
			// or started: its worker takes care of it.
		default:
			do.Remove = append(do.Remove, c)
		}
	}
	for name := range isPlaced {
		if !isLive[name] && !adopting[name] {
			do.Start = append(do.Start, name)
		}
	}
	for name := range isLive {
		if !isPlaced[name] {
			do.Stop = append(do.Stop, name)
		}
	}
	byID := func(a, b runtime.Container) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(do.Remove, byID)
	slices.SortFunc(do.Adopt, byID)
	slices.Sort(do.Start)
	slices.Sort(do.Stop)
	return do
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
