package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/agent/network"
	"github.com/kiln-serving/kiln/agent/queue"
	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
)

// Labels kiln puts on its containers, so a restarted agent can re-adopt
// them without any state of its own.
// QueueCallers are who may call a queue-proxy over mutual TLS: edges, and
// activators forwarding buffered requests.
var QueueCallers = pki.Allow(pki.RoleGateway, pki.RoleActivator)

const (
	labelInstance  = "kiln.dev/instance"
	labelNamespace = "kiln.dev/namespace"
	labelRevision  = "kiln.dev/revision"
	labelPort      = "kiln.dev/port"
	labelQueuePort = "kiln.dev/queue-port"
	labelNetNS     = "kiln.dev/netns"
	labelIP        = "kiln.dev/ip"
	// labelRestarts is the instance's RestartCount, so an agent that
	// adopts the container keeps counting from it.
	labelRestarts = "kiln.dev/restarts"
)

// storeTimeout bounds each store write, so a stuck etcd cannot wedge an
// instance's lifecycle forever.
const storeTimeout = 5 * time.Second

// Agent runs the instances placed on one node.
type Agent struct {
	cfg   Config
	st    store.Store
	log   *slog.Logger
	rt    containers
	net   podNetwork // nil with HostNetwork
	ports *portPool
	pins  imagePins
	// objs reads the ConfigMaps and Secrets instances refer to; tokens
	// signs their service account tokens.
	objs   objectSource
	tokens *tokenSigner

	// leaseMu is held for writing while the lease is replaced and every
	// record rewritten on it, so no record is written on a dead lease.
	leaseMu sync.RWMutex
	lease   int64

	mu      sync.Mutex
	workers map[string]*worker
	records map[string]cluster.Instance // last written, for lease re-grants
	// wg joins every worker and orphan removal before Run returns.
	wg sync.WaitGroup
}

// New checks cfg and connects to containerd (lazily: Run fails if it is
// down). st is where the node and instance records go.
func New(cfg Config, st store.Store, log *slog.Logger) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log = log.With("component", "agent", "node", cfg.NodeName)
	var pn podNetwork
	if !cfg.HostNetwork {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		n, err := network.New(ctx, network.Config{
			StateDir:   filepath.Join(cfg.StateDir, "cni"),
			BinDir:     cfg.CNIBinDir,
			BridgeName: cfg.BridgeName,
			Subnet:     cfg.Subnet,
			Isolation:  cfg.NetworkIsolation,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("agent network: %w", err)
		}
		pn = n
	}
	rt, err := runtime.New(cfg.ContainerdAddress, cfg.Namespace, cfg.PlainHTTPRegistries, log)
	if err != nil {
		return nil, err
	}
	a, err := newAgent(cfg, st, log, rt, pn)
	if err != nil {
		_ = rt.Close()
		return nil, err
	}
	return a, nil
}

// newAgent builds an agent on rt and pn (nil with HostNetwork). cfg has
// its defaults; log is already scoped to the agent.
func newAgent(cfg Config, st store.Store, log *slog.Logger, rt containers, pn podNetwork) (*Agent, error) {
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("agent state dir: %w", err)
	}
	tokens, err := loadTokenSigner(filepath.Join(cfg.StateDir, "serviceaccount"))
	if err != nil {
		return nil, fmt.Errorf("agent service account signing key: %w", err)
	}
	return &Agent{
		cfg:     cfg,
		st:      st,
		log:     log,
		rt:      rt,
		net:     pn,
		ports:   newPortPool(cfg.PortMin, cfg.PortMax),
		objs:    storeObjects{st: st, keys: cfg.SecretKeys},
		tokens:  tokens,
		workers: map[string]*worker{},
		records: map[string]cluster.Instance{},
	}, nil
}

// InstanceStats is one instance's queue-proxy counters.
type InstanceStats struct {
	Instance  string
	Namespace string
	Revision  string
	queue.Stats
}

// Stats returns the counters of every instance with a live queue-proxy.
func (a *Agent) Stats() []InstanceStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]InstanceStats, 0, len(a.workers))
	for _, w := range a.workers {
		r := w.proxyRef.Load()
		if r == nil {
			continue
		}
		if st, ok := r.q.Stats(); ok {
			out = append(out, InstanceStats{
				Instance:  w.name,
				Namespace: w.p.Spec.Namespace,
				Revision:  w.p.Spec.Revision,
				Stats:     st,
			})
		}
	}
	return out
}

// Run registers the node, adopts what is already running and follows this
// node's placements until ctx ends. Then it leaves containers running and
// its records on the lease until the lease runs out, or, with StopOnExit,
// stops them and revokes its lease, which removes the node and instance
// records at once. A lost lease fences the node: every instance is
// stopped, then the node registers again and runs what is placed on it
// then. Everything it started has ended when it returns.
func (a *Agent) Run(ctx context.Context) error {
	defer func() {
		if cerr := a.rt.Close(); cerr != nil {
			a.log.Warn("close containerd connection", "error", cerr)
		}
	}()
	if err := a.rt.Ping(ctx); err != nil {
		return err
	}
	// The lease and the workers outlive ctx a little: shutdown needs them
	// to stop instances and write their last records.
	bg := context.WithoutCancel(ctx)
	leaseCtx, cancelLease := context.WithCancel(bg)
	defer cancelLease()
	lost, err := a.register(ctx, leaseCtx)
	if err != nil {
		return err
	}
	a.log.Info("node registered", "address", a.cfg.Address, "host_network", a.cfg.HostNetwork)

	// Listed once, before the first placements arrive: containers an
	// earlier agent left are adopted or removed then, and never again.
	found, err := a.rt.List(ctx)
	if err != nil {
		return err
	}
	if len(a.cfg.QueueCommand) > 0 {
		live := map[string]bool{}
		for _, c := range found {
			live[instanceOf(c)] = true
		}
		a.stopStrayQueues(live)
	}
	wctx, cancelWorkers := context.WithCancel(bg)
	defer cancelWorkers()

	placements := store.NewCache(store.PlacementPrefix+a.cfg.NodeName+"/", decodePlacement, a.log)
	placements.OnChange(func(ch store.Change[placed]) {
		// Deleted and created again between two feeds, a placement comes
		// as one put: its old instance goes before the new one starts.
		if ch.HadOld && !ch.Deleted && ch.Old.created != ch.New.created {
			_, name := store.SplitLast(ch.Key)
			a.remove(name)
		}
	})
	mirror := store.NewMirror(placements)
	// Followers and the reporter end with ctx; joined below, after the
	// workers.
	var g errgroup.Group
	g.Go(func() error {
		mirror.Run(ctx, a.st, a.log)
		return nil
	})
	if a.cfg.AutoscalerLeaders != nil {
		g.Go(func() error { return a.reportMetrics(ctx) })
	}

loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-lost:
			// The cluster counts this node's instances gone and places
			// them elsewhere: they must not keep running here as well.
			a.fence(wctx, found)
			found = nil
			lost = a.reregister(ctx, leaseCtx)
			if ctx.Err() == nil && placements.Synced() {
				a.act(wctx, placements, plan(placedNames(placements), a.liveWorkers(), nil))
			}
		case f := <-mirror.Feeds():
			mirror.Apply(f)
			if !placements.Synced() {
				continue
			}
			a.act(wctx, placements, plan(placedNames(placements), a.liveWorkers(), found))
			found = nil
		}
	}

	a.mu.Lock()
	for _, w := range a.workers {
		if a.cfg.StopOnExit {
			w.stop.Store(true)
		}
		w.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
	if a.cfg.StopOnExit && a.net != nil {
		// Nothing is left running to protect.
		cctx, cancel := context.WithTimeout(bg, storeTimeout)
		if err := a.net.RemoveIsolation(cctx); err != nil {
			a.log.Warn("remove isolation rules", "error", err)
		}
		cancel()
	}

	if a.cfg.StopOnExit {
		a.leaseMu.Lock()
		rctx, cancel := context.WithTimeout(bg, storeTimeout)
		if err := a.st.RevokeLease(rctx, a.lease); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			a.log.Warn("revoke lease", "error", err)
		}
		cancel()
		a.leaseMu.Unlock()
	}
	// Otherwise the lease is left to run out (cancelLease ends its
	// keep-alives): until then edges keep routing to the instances left
	// running, and an agent started again meanwhile takes them over.
	a.log.Info("agent stopped", "stopped_instances", a.cfg.StopOnExit, "lease_ttl", a.cfg.LeaseTTL)
	return g.Wait()
}

// fence stops every instance of this node, as if its placement had been
// removed, once the node lease is lost: the cluster has dropped this
// node's records and may already run the instances elsewhere. Containers
// found at start and not yet adopted go too. It returns once all of them
// are gone; the records went with the lease.
func (a *Agent) fence(wctx context.Context, found []runtime.Container) {
	a.mu.Lock()
	n := 0
	var done []chan struct{}
	for _, w := range a.workers {
		if !w.removed {
			n++
		}
		w.removed = true
		w.fenced.Store(true)
		w.stop.Store(true)
		w.cancel()
		done = append(done, w.done)
	}
	a.mu.Unlock()
	a.log.Warn("node lease lost: stopping every instance of this node", "lease", fmt.Sprintf("%x", a.lease), "instances", n, "containers_found", len(found))
	var orphans sync.WaitGroup
	for _, c := range found {
		orphans.Go(func() { a.removeOrphan(wctx, c) })
	}
	orphans.Wait()
	for _, d := range done {
		<-d
	}
	a.mu.Lock()
	clear(a.records)
	a.mu.Unlock()
}

// placed is a placement as the agent's cache holds it. created (the key's
// create revision) tells a placement deleted and created again under the
// same name from the one before.
type placed struct {
	cluster.Placement
	created int64
}

func decodePlacement(kv store.KV) (placed, error) {
	p, err := store.JSON[cluster.Placement](kv)
	return placed{Placement: p, created: kv.CreateRevision}, err
}

// placedNames is the instance names of the cached placements.
func placedNames(c *store.Cache[placed]) []string {
	names := make([]string, 0, c.Len())
	for _, k := range c.Keys() {
		_, name := store.SplitLast(k)
		names = append(names, name)
	}
	return names
}

// liveWorkers is the instances with a worker not already stopping.
func (a *Agent) liveWorkers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.workers))
	for name, w := range a.workers {
		if !w.removed {
			names = append(names, name)
		}
	}
	return names
}

// act carries out do. Orphans are removed in the background, joined by
// Run; workers decide for themselves whether an adoption works.
func (a *Agent) act(wctx context.Context, placements *store.Cache[placed], do actions) {
	for _, c := range do.Remove {
		a.log.Info("removing container without placement", "container", c.ID, "instance", instanceOf(c))
		a.wg.Go(func() { a.removeOrphan(wctx, c) })
	}
	for _, c := range do.Adopt {
		if p, ok := placements.Get(store.PlacementKey(a.cfg.NodeName, instanceOf(c))); ok {
			a.ensure(wctx, instanceOf(c), p.Placement, &c)
		}
	}
	for _, name := range do.Start {
		if p, ok := placements.Get(store.PlacementKey(a.cfg.NodeName, name)); ok {
			a.ensure(wctx, name, p.Placement, nil)
		}
	}
	for _, name := range do.Stop {
		a.remove(name)
	}
}

// ensure starts a worker for the placement unless one runs already. A
// worker still stopping an earlier placement of the same name finishes
// first.
func (a *Agent) ensure(wctx context.Context, name string, p cluster.Placement, adopt *runtime.Container) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.workers[name]
	if prev != nil && !prev.removed {
		return
	}
	ctx, cancel := context.WithCancel(wctx)
	w := a.newWorker(name, p, adopt, cancel)
	a.workers[name] = w
	a.wg.Go(func() {
		if prev != nil {
			<-prev.done
		}
		w.run(ctx)
		close(w.done)
		a.mu.Lock()
		if a.workers[name] == w {
			delete(a.workers, name)
		}
		a.mu.Unlock()
	})
}

// remove stops the instance of a deleted placement.
func (a *Agent) remove(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.workers[name]; w != nil && !w.removed {
		w.removed = true
		w.stop.Store(true)
		w.cancel()
	}
}

func (a *Agent) removeOrphan(ctx context.Context, c runtime.Container) {
	inst := instanceOf(c)
	log := a.log.With("instance", inst, "container", c.ID, "revision", c.Labels[labelRevision])
	if len(a.cfg.QueueCommand) > 0 && c.Labels[labelPod] == "" {
		a.stopQueueOf(inst)
	}
	if err := a.rt.Remove(ctx, c.ID, 10*time.Second); err != nil {
		log.Error("remove orphan container", "error", err)
	}
	if ns := c.Labels[labelNetNS]; ns != "" && a.net != nil {
		if err := a.net.Teardown(ctx, inst, ns); err != nil {
			log.Warn("tear down orphan network", "error", err)
		}
	}
	if c.Labels[labelPod] == "" {
		if err := a.removeVolumes(inst); err != nil {
			log.Warn("remove orphan volumes", "error", err)
		}
	}
}

// register grants a lease and writes the node record on it.
func (a *Agent) register(ctx, leaseCtx context.Context) (<-chan struct{}, error) {
	id, lost, err := a.st.GrantLease(leaseCtx, a.cfg.LeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("grant node lease: %w", err)
	}
	node := cluster.Node{
		Name:              a.cfg.NodeName,
		Address:           a.cfg.Address,
		APIAddress:        a.cfg.APIAddress,
		CapacityMilliCPU:  int64(goruntime.NumCPU()) * 1000,
		CapacityMemoryMiB: memTotalMiB(),
		MaxInstances:      a.cfg.MaxInstances,
		StartedAt:         time.Now().UTC(),
	}
	b, _ := json.Marshal(node)
	if _, err := a.st.Put(ctx, store.NodeKey(a.cfg.NodeName), b, store.WithLease(id)); err != nil {
		return nil, fmt.Errorf("write node record: %w", err)
	}
	a.lease = id
	return lost, nil
}

// reregister replaces a lost lease and rewrites the node and every
// instance record on the new one. It retries until it works or ctx ends.
func (a *Agent) reregister(ctx, leaseCtx context.Context) <-chan struct{} {
	a.log.Warn("node lease lost, re-registering")
	a.leaseMu.Lock()
	defer a.leaseMu.Unlock()
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		lost, err := a.register(ctx, leaseCtx)
		if err == nil {
			a.mu.Lock()
			recs := make([]cluster.Instance, 0, len(a.records))
			for _, r := range a.records {
				recs = append(recs, r)
			}
			a.mu.Unlock()
			for _, r := range recs {
				if err := a.writeRecord(ctx, r); err != nil {
					a.log.Warn("rewrite instance record", "instance", r.Instance, "error", err)
				}
			}
			return lost
		}
		a.log.Warn("re-register node", "error", err)
		select {
		case <-ctx.Done():
			// The Run loop sees ctx end next; a never-closing channel
			// keeps it from spinning here.
			return make(chan struct{})
		case <-time.After(backoff):
		}
	}
}

// putRecord remembers rec and writes it on the current lease.
func (a *Agent) putRecord(ctx context.Context, rec cluster.Instance) error {
	a.leaseMu.RLock()
	defer a.leaseMu.RUnlock()
	a.mu.Lock()
	a.records[rec.Instance] = rec
	a.mu.Unlock()
	return a.writeRecord(ctx, rec)
}

func (a *Agent) writeRecord(ctx context.Context, rec cluster.Instance) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = a.st.Put(ctx, store.InstanceKey(a.cfg.NodeName, rec.Instance), b, store.WithLease(a.lease))
	return err
}

// deleteRecord forgets and deletes an instance's record.
func (a *Agent) deleteRecord(ctx context.Context, name string) error {
	a.leaseMu.RLock()
	defer a.leaseMu.RUnlock()
	a.mu.Lock()
	delete(a.records, name)
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err := a.st.Delete(ctx, store.InstanceKey(a.cfg.NodeName, name))
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// memTotalMiB reads MemTotal from /proc/meminfo (0 if unreadable).
func memTotalMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb / 1024
		}
	}
	return 0
}

// OpenNamespaces sets the namespaces whose instances on this node may reach
// each other (config-network's namespace-internal-traffic); every other
// instance reaches neither its neighbours nor the node. A no-op with
// HostNetwork.
func (a *Agent) OpenNamespaces(ctx context.Context, namespaces []string) error {
	if a.net == nil {
		return nil
	}
	return a.net.OpenNamespaces(ctx, namespaces)
}
