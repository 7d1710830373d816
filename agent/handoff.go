package agent

import (
	"context"
	"encoding/json"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// resumeRecord keeps an adopted instance in rotation across an agent
// restart. The previous agent left its record (Ready, Endpoint) on its
// lease; when that record is still there, names the same revision and the
// container passes one readiness probe now, the record is rewritten as it
// was, on this agent's lease, instead of going through Starting with
// Ready=false. It reports whether it wrote the record; if not, the caller
// writes Starting as for any adoption.
func (w *worker) resumeRecord(ctx context.Context) bool {
	prev, ok := w.a.previousRecord(ctx, w.name)
	if !ok || !prev.Ready || prev.Endpoint == "" || prev.Revision != w.p.Spec.Revision || prev.Phase != cluster.PhaseRunning {
		return false
	}
	if err := w.prober(readinessProbe(w.p.Spec)).check(ctx); err != nil {
		w.log.Info("adopted instance not ready yet; leaving rotation until it is", "error", err)
		return false
	}
	w.rec.Ready, w.rec.Endpoint, w.rec.ContainerIP = true, prev.Endpoint, prev.ContainerIP
	w.setPhase(ctx, cluster.PhaseRunning, "", "")
	return true
}

// previousRecord reads this node's record of instance name, as an earlier
// agent left it.
func (a *Agent) previousRecord(ctx context.Context, name string) (cluster.Instance, bool) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	kv, err := a.st.Get(ctx, store.InstanceKey(a.cfg.NodeName, name))
	if err != nil {
		return cluster.Instance{}, false
	}
	var rec cluster.Instance
	if json.Unmarshal(kv.Value, &rec) != nil {
		return cluster.Instance{}, false
	}
	return rec, true
}
