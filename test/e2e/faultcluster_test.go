package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	kc "github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

var (
	memberOnce sync.Once
	memberBin  string
	memberErr  error
)

// etcdMemberBinary builds internal/testenv/etcdmember once per test binary
// (from the module cache: etcd's server is already a dependency).
func etcdMemberBinary(t testing.TB) string {
	t.Helper()
	binaries(t) // binDir
	memberOnce.Do(func() {
		memberBin = filepath.Join(binDir, "etcdmember")
		cmd := exec.Command("go", "build", "-o", memberBin, "../../internal/testenv/etcdmember")
		if out, err := cmd.CombinedOutput(); err != nil {
			memberErr = fmt.Errorf("go build etcdmember: %v\n%s", err, out)
		}
	})
	if memberErr != nil {
		t.Fatal(memberErr)
	}
	return memberBin
}

// proc is one process of the fault cluster, killed and started again with
// the same arguments.
type proc struct {
	name string
	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd exited
	log  *os.File
}

// faultCluster is a kiln installation for fault tests: three etcd members,
// two of every role, three agents (node-1, node-2 and node-3, each with its
// own bridge, subnet and containerd namespace on one containerd), one gateway
// reaching both xds replicas and a CLI reaching both apiservers. Every
// process can be killed (SIGKILL) and started again.
type faultCluster struct {
	*cluster
	etcdURLs  []string
	apis      []string // https://host:port of each apiserver
	xdsAddrs  []string
	bridges   map[string]string // node → bridge
	subnets   map[string]string // node → subnet
	nodes     []string
	st        *etcdstore.Store
	pmu       sync.Mutex
	processes map[string]*proc
	// load is the steady load, once started.
	load *steadyLoad
}

// startFaultCluster starts the fault cluster and waits until both
// apiservers answer.
func startFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	testenv.RequireRoot(t)
	kiln, kilnd := binaries(t)
	member := etcdMemberBinary(t)
	c := &cluster{t: t, kiln: kiln, kilnd: kilnd, dir: t.TempDir(), procs: map[string]*exec.Cmd{}}
	fc := &faultCluster{cluster: c, processes: map[string]*proc{}, bridges: map[string]string{}, subnets: map[string]string{},
		nodes: []string{"node-1", "node-2", "node-3"}}
	c.ctrdAddress = testenv.StartContainerd(t)
	// Registered after containerd's cleanup, so it runs before it: every
	// process ends (agents stop their instances) before containerd removes
	// what is left.
	t.Cleanup(fc.cleanup)

	// etcd: three members, each its own process.
	var peers []string
	peerURLs := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("etcd-%d", i+1)
		peerURLs[name] = fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
		peers = append(peers, name+"="+peerURLs[name])
		fc.etcdURLs = append(fc.etcdURLs, fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)))
	}
	for i := range 3 {
		name := fmt.Sprintf("etcd-%d", i+1)
		fc.spawn(name, member, "--name", name, "--data-dir", filepath.Join(c.dir, name), "--client-url", fc.etcdURLs[i],
			"--peer-url", peerURLs[name], "--initial-cluster", strings.Join(peers, ","))
	}
	c.etcd = strings.Join(fc.etcdURLs, ",")
	st, err := etcdstore.Dial(fc.etcdURLs, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fc.st = st
	if err := waitUntil(60*time.Second, fc.etcdHealthy); err != nil {
		t.Fatalf("etcd cluster: %v", err)
	}

	c.serveSampleImage()
	c.issueRoleCerts()
	for _, node := range fc.nodes[1:] {
		c.certs["agent/"+node] = c.issue("agent-"+node, pki.Identity{Role: pki.RoleAgent, Name: node})
	}
	c.tokenFile = filepath.Join(c.dir, "token")
	os.WriteFile(c.tokenFile, []byte(fmt.Sprintf("e2e-%d\n", rand.Int63())), 0o600)
	c.keyFile = filepath.Join(c.dir, "encryption-keys.yaml")
	if out, err := exec.Command(c.kilnd, "admin", "encryption-key", "create", "--name", "e2e-1", c.keyFile).CombinedOutput(); err != nil {
		t.Fatalf("create encryption key file: %v\n%s", err, out)
	}
	apiTLS := c.issueAPICertificate()
	nodeClient := c.issue("apiserver-client", pki.Identity{Role: pki.RoleAPIServer})
	gwPort, httpsPort, internalPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	c.gateway = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	for i := range 2 {
		port := testenv.FreePort(t)
		fc.apis = append(fc.apis, fmt.Sprintf("https://127.0.0.1:%d", port))
		fc.kilnd(fmt.Sprintf("apiserver-%d", i+1), "apiserver", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--token-file", c.tokenFile,
			"--tls-cert-file", apiTLS.Cert, "--tls-key-file", apiTLS.Key, "--client-ca-file", apiTLS.CA, "--encryption-key-file", c.keyFile,
			"--gateway-endpoint", fmt.Sprintf("http=127.0.0.1:%d,https=127.0.0.1:%d", gwPort, httpsPort),
			"--node-ca-file", nodeClient.CA, "--node-cert-file", nodeClient.Cert, "--node-key-file", nodeClient.Key)
	}
	// The CLI fails over between both apiservers.
	c.api = strings.Join(fc.apis, ",")
	for i := range 2 {
		c.autoscalers = append(c.autoscalers, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
		c.activators = append(c.activators, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
		fc.xdsAddrs = append(fc.xdsAddrs, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
		fc.kilnd(fmt.Sprintf("controller-%d", i+1), "controller")
		fc.kilnd(fmt.Sprintf("scheduler-%d", i+1), "scheduler")
		fc.kilnd(fmt.Sprintf("autoscaler-%d", i+1), "autoscaler", c.tlsArgs(pki.RoleAutoscaler, "--listen", c.autoscalers[i])...)
		fc.kilnd(fmt.Sprintf("activator-%d", i+1), "activator", c.tlsArgs(pki.RoleActivator, "--listen", c.activators[i])...)
	}
	c.activator = c.activators[0]
	for i, addr := range fc.xdsAddrs {
		fc.kilnd(fmt.Sprintf("xds-%d", i+1), "xds", c.tlsArgs(pki.RoleXDS, "--listen", addr, "--http-port", fmt.Sprint(gwPort),
			"--activator-address", c.activators[0], "--https-port", fmt.Sprint(httpsPort), "--internal-port", fmt.Sprint(internalPort),
			"--encryption-key-file", c.keyFile)...)
	}
	c.gatewayAdmin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	fc.kilnd("gateway", "gateway", c.tlsArgs(pki.RoleGateway, "--xds-address", fc.xdsAddrs[0], "--xds-address", fc.xdsAddrs[1],
		"--listen-host", "127.0.0.1", "--node-id", "e2e-edge", "--admin-listen", c.gatewayAdmin)...)
	for _, node := range fc.nodes {
		// Bridge, subnet, containerd namespace and state of its own: two
		// agents sharing a namespace would adopt each other's containers.
		fc.bridges[node] = fmt.Sprintf("kf%d", rand.Intn(100000))
		fc.subnets[node] = freeSubnetExcept(t, fc.subnets)
		certs := c.certs[pki.RoleAgent]
		if node != "node-1" {
			certs = c.certs["agent/"+node]
		}
		fc.kilnd("agent-"+node, "agent", "--node-name", node, "--containerd-address", c.ctrdAddress, "--containerd-namespace", fc.nodeNamespace(node),
			"--state-dir", fc.stateDir(node), "--bridge", fc.bridges[node], "--subnet", fc.subnets[node], "--stop-on-exit",
			"--node-api-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--encryption-key-file", c.keyFile,
			"--tls-ca-file", certs.CA, "--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key)
	}
	for _, api := range fc.apis {
		c.waitHTTPWith(c.apiClient, api+"/healthz", 30*time.Second)
	}
	// Every node before any placement, so the scheduler can spread.
	c.waitFor("every node registered", 30*time.Second, func() bool {
		n, err := fc.countKeys(store.NodesPrefix)
		return err == nil && n == len(fc.nodes)
	})
	return fc
}

// stateDir is the state directory of node's agent.
func (fc *faultCluster) stateDir(node string) string { return filepath.Join(fc.dir, "agent-"+node) }

// nodeNamespace is the containerd namespace of node's agent.
func (fc *faultCluster) nodeNamespace(node string) string { return "kiln-faults-" + node }

// killNode kills node whole, at once (SIGKILL): its agent, every process
// naming its state directory (the instances' queue-proxies) and every
// running task of its containerd namespace, as a machine losing power
// would. Every pid is found beforehand, so the kills take a moment; then
// containerd kills what the tasks' first processes left. It returns once
// the agent is gone and every task stopped, with what it killed and when
// the kills began and were sent.
func (fc *faultCluster) killNode(node string) (what string, at, sent time.Time, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrd, err := containerd.New(fc.ctrdAddress)
	if err != nil {
		return "", at, sent, err
	}
	defer ctrd.Close()
	nctx := namespaces.WithNamespace(ctx, fc.nodeNamespace(node))
	tasks, err := runningTasksIn(nctx, ctrd, node)
	if err != nil {
		return "", at, sent, err
	}
	agent := fc.proc("agent-" + node)
	// Besides the agent, whose command line names it too.
	naming := slices.DeleteFunc(pidsNaming(fc.stateDir(node)), func(pid int) bool { return pid == agent.cmd.Process.Pid })
	pids := append([]int{agent.cmd.Process.Pid}, naming...)
	for _, task := range tasks {
		pids = append(pids, int(task.Pid()))
	}
	at = time.Now()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	sent = time.Now()
	<-agent.done
	// What the first processes left, a queue-proxy or a task started
	// while the pids were gathered.
	killNaming(fc.stateDir(node))
	var errs []error
	err = waitUntil(10*time.Second, func() error {
		left, err := runningTasksIn(nctx, ctrd, node)
		if err != nil {
			return err
		}
		for _, task := range left {
			_ = task.Kill(nctx, syscall.SIGKILL, containerd.WithKillAll)
		}
		if len(left) > 0 {
			return fmt.Errorf("%d tasks of %s still running", len(left), node)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return fmt.Sprintf("agent, %d processes naming its state dir, %d running tasks", len(naming), len(tasks)), at, sent, errors.Join(errs...)
}

// runningTasks counts the tasks of node's containerd namespace that have
// not stopped.
func (fc *faultCluster) runningTasks(node string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctrd, err := containerd.New(fc.ctrdAddress)
	if err != nil {
		return 0, err
	}
	defer ctrd.Close()
	tasks, err := runningTasksIn(namespaces.WithNamespace(ctx, fc.nodeNamespace(node)), ctrd, node)
	return len(tasks), err
}

// runningTasksIn lists the tasks that have not stopped in the containerd
// namespace of nctx, node's.
func runningTasksIn(nctx context.Context, ctrd *containerd.Client, node string) ([]containerd.Task, error) {
	ctrs, err := ctrd.Containers(nctx)
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", node, err)
	}
	var tasks []containerd.Task
	for _, ctr := range ctrs {
		task, err := ctr.Task(nctx, nil)
		if err != nil {
			continue
		}
		if st, err := task.Status(nctx); err == nil && st.Status != containerd.Stopped {
			tasks = append(tasks, task)
		}
	}
	return tasks, nil
}

// freeSubnetExcept is testenv.FreeSubnet, never one of taken.
func freeSubnetExcept(t testing.TB, taken map[string]string) string {
	for {
		s := testenv.FreeSubnet(t)
		clash := false
		for _, o := range taken {
			clash = clash || o == s
		}
		if !clash {
			return s
		}
	}
}

// kilnd starts `kilnd --etcd-endpoints E1 ... ROLE args...` (every etcd
// member) as process name.
func (fc *faultCluster) kilnd(name, role string, args ...string) {
	var full []string
	for _, u := range fc.etcdURLs {
		full = append(full, "--etcd-endpoints", u)
	}
	fc.spawn(name, fc.cluster.kilnd, append(append(full, role), args...)...)
}

// spawn starts bin with args as process name, its output appended to
// DIR/name.log.
func (fc *faultCluster) spawn(name, bin string, args ...string) {
	fc.t.Helper()
	if err := fc.startProc(&proc{name: name, bin: bin, args: args}); err != nil {
		fc.t.Fatal(err)
	}
}

func (fc *faultCluster) startProc(p *proc) error {
	logf, err := os.OpenFile(filepath.Join(fc.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.log, p.done = cmd, logf, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(p.done)
	fc.pmu.Lock()
	fc.processes[p.name] = p
	fc.pmu.Unlock()
	return nil
}

func (fc *faultCluster) proc(name string) *proc {
	fc.pmu.Lock()
	defer fc.pmu.Unlock()
	p := fc.processes[name]
	if p == nil {
		panic("no process " + name)
	}
	return p
}

// kill sends SIGKILL to process name and waits until it is gone.
func (fc *faultCluster) kill(name string) {
	p := fc.proc(name)
	p.cmd.Process.Kill()
	<-p.done
}

// restart starts the killed process name again with its arguments.
func (fc *faultCluster) restart(name string) error {
	p := fc.proc(name)
	select {
	case <-p.done:
	default:
		return fmt.Errorf("restart %s: still running", name)
	}
	return fc.startProc(&proc{name: p.name, bin: p.bin, args: p.args})
}

// pidOf is process name's pid.
func (fc *faultCluster) pidOf(name string) int { return fc.proc(name).cmd.Process.Pid }

// cleanup ends every process (kiln's roles first, gracefully, so agents
// stop their instances; then etcd), anything else whose command line names
// the cluster's directory, and removes every agent's bridge and nftables
// table.
func (fc *faultCluster) cleanup() {
	fc.pmu.Lock()
	var roles, members []*proc
	for _, p := range fc.processes {
		if strings.HasPrefix(p.name, "etcd-") {
			members = append(members, p)
		} else {
			roles = append(roles, p)
		}
	}
	fc.pmu.Unlock()
	stop := func(ps []*proc) {
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Go(func() {
				p.cmd.Process.Signal(os.Interrupt)
				select {
				case <-p.done:
				case <-time.After(20 * time.Second):
					p.cmd.Process.Kill()
					<-p.done
				}
			})
		}
		wg.Wait()
	}
	stop(roles)
	stop(members)
	killNaming(fc.dir)
	// A killed agent leaves its instances' network namespaces mounted
	// under its state dir (containerd's cleanup then ends their tasks).
	unmountUnder(fc.dir)
	for _, br := range fc.bridges {
		exec.Command("ip", "link", "del", br).Run()
		exec.Command("nft", "delete", "table", "inet", "kiln-"+br).Run()
	}
	if fc.t.Failed() {
		for _, p := range append(roles, members...) {
			b, _ := os.ReadFile(filepath.Join(fc.dir, p.name+".log"))
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			fc.t.Logf("---- %s log (tail) ----\n%s", p.name, b)
		}
	}
}

// killNaming kills every process whose command line contains s (processes
// a killed agent left, such as per-instance helpers).
func killNaming(s string) {
	for _, pid := range pidsNaming(s) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsNaming lists the processes (not this one) whose command line
// contains s.
func pidsNaming(s string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount below dir.
func unmountUnder(dir string) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}

// waitUntil polls check until it returns nil or d passes, then returns
// its last error. Unlike testenv.EventuallyNil it never ends the test, so
// one fault's failure does not stop the others.
func waitUntil(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// etcdHealthy: every member answers and all agree on one leader.
func (fc *faultCluster) etcdHealthy() error {
	leaders := map[uint64]bool{}
	for _, ep := range fc.etcdURLs {
		s, err := fc.memberStatus(ep)
		if err != nil {
			return fmt.Errorf("etcd member %s: %w", ep, err)
		}
		if s.Leader == 0 {
			return fmt.Errorf("etcd member %s has no leader", ep)
		}
		leaders[s.Leader] = true
	}
	if len(leaders) != 1 {
		return fmt.Errorf("etcd members disagree on the leader: %v", leaders)
	}
	return nil
}

// memberStatus asks the member at ep for its status, waiting a second at
// most (a dead member must not use up the others' time).
func (fc *faultCluster) memberStatus(ep string) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A client of that member only: one of all members may answer for
	// another from a connection it has not noticed is dead.
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Status(ctx, ep)
}

// etcdLeader is the name (etcd-N) of the member leading etcd.
func (fc *faultCluster) etcdLeader() (string, error) {
	for i, ep := range fc.etcdURLs {
		s, err := fc.memberStatus(ep)
		if err == nil && s.Leader == s.Header.MemberId {
			return fmt.Sprintf("etcd-%d", i+1), nil
		}
	}
	return "", errors.New("no etcd member leads")
}

// leaderProc is the process (ROLE-N) leading role: the controller's and
// scheduler's identity ends in its pid, the autoscaler's is its address.
func (fc *faultCluster) leaderProc(role string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	id, err := election.Leader(ctx, fc.st.Client(), role)
	if err != nil {
		return "", err
	}
	for i := range 2 {
		name := fmt.Sprintf("%s-%d", role, i+1)
		if role == "autoscaler" && id == fc.autoscalers[i] {
			return name, nil
		}
		if strings.HasSuffix(id, fmt.Sprintf("-%d", fc.pidOf(name))) {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s leader %q is none of the cluster's processes", role, id)
}

// countKeys counts the keys under prefix.
func (fc *faultCluster) countKeys(prefix string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	kvs, _, err := fc.st.List(ctx, prefix)
	return len(kvs), err
}

// placement is where ns/rev's ready instances run: node → count.
func (fc *faultCluster) placement(rev string) (map[string]int, error) {
	ins, err := instancesOf(fc.st, "default", rev)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, in := range ins {
		if in.Ready {
			out[in.Node]++
		}
	}
	return out, nil
}

// nodeInstances counts instance records of node.
func (fc *faultCluster) nodeInstances(node string) (int, error) {
	return fc.countKeys(store.InstancePrefix + node + "/")
}

// latestReady is service name's latest ready revision.
func (fc *faultCluster) latestReady(name string) (string, error) {
	out, err := fc.run("service", "describe", name, "-o", "json")
	if err != nil {
		return "", fmt.Errorf("describe %s: %v: %s", name, err, out)
	}
	var s svcStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return "", err
	}
	return s.Status.LatestReadyRevisionName, nil
}

// dialable: something listens on addr.
func dialable(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// whole says why the cluster is not whole, or nil: every live process
// up, etcd with one leader, both apiservers and xds replicas listening, both
// activators registered, a leader of every singleton, nodes registered, each
// service answering its body through the gateway from minScale ready
// instances of its latest revision on nodes.
func (fc *faultCluster) whole(nodes []string, bodies map[string]string, minScale int) error {
	fc.pmu.Lock()
	for _, p := range fc.processes {
		select {
		case <-p.done:
			if !strings.HasPrefix(p.name, "agent-") || slices.Contains(nodes, strings.TrimPrefix(p.name, "agent-")) {
				fc.pmu.Unlock()
				return fmt.Errorf("%s is not running", p.name)
			}
		default:
		}
	}
	fc.pmu.Unlock()
	if err := fc.etcdHealthy(); err != nil {
		return err
	}
	for _, api := range fc.apis {
		resp, err := fc.apiClient.Get(api + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s/healthz: %d", api, resp.StatusCode)
		}
	}
	for _, a := range fc.xdsAddrs {
		if err := dialable(a); err != nil {
			return fmt.Errorf("xds %s: %w", a, err)
		}
	}
	if err := fc.activatorsRegistered(); err != nil {
		return err
	}
	for _, role := range []string{"controller", "scheduler", "autoscaler"} {
		if _, err := fc.leaderProc(role); err != nil {
			return err
		}
	}
	for _, node := range nodes {
		if n, err := fc.countKeys(store.NodesPrefix + node); err != nil || n != 1 {
			return fmt.Errorf("node %s not registered (%v)", node, err)
		}
	}
	for host, body := range bodies {
		code, got, err := fc.get(host)
		if err != nil || code != 200 || strings.TrimSpace(got) != body {
			return fmt.Errorf("%s answers %d %q (%v), want %q", host, code, got, err, body)
		}
		svc := strings.SplitN(host, ".", 2)[0]
		rev, err := fc.latestReady(svc)
		if err != nil {
			return err
		}
		pl, err := fc.placement(rev)
		if err != nil {
			return err
		}
		if total := readyOn(pl, nodes); total < minScale {
			return fmt.Errorf("%s has %d ready instances on %v (%v), want %d", rev, total, nodes, pl, minScale)
		}
	}
	return nil
}

// activatorsRegistered: activators/ holds exactly the running activator
// processes (a killed one's record is gone, its successor's is there).
func (fc *faultCluster) activatorsRegistered() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	kvs, _, err := fc.st.List(ctx, store.ActivatorsPrefix)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	want := map[string]bool{}
	for i := range fc.activators {
		want[fmt.Sprintf("%s-%d", host, fc.pidOf(fmt.Sprintf("activator-%d", i+1)))] = true
	}
	var got []string
	for _, kv := range kvs {
		var a kc.Activator
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return fmt.Errorf("%s: %w", kv.Key, err)
		}
		got = append(got, a.Identity)
	}
	ok := len(got) == len(want)
	for _, id := range got {
		ok = ok && want[id]
	}
	if !ok {
		return fmt.Errorf("activators registered %v, want the running ones %v", got, want)
	}
	return nil
}

// readyOn is how many of a placement's ready instances run on nodes.
func readyOn(pl map[string]int, nodes []string) int {
	total := 0
	for n, c := range pl {
		if slices.Contains(nodes, n) {
			total += c
		}
	}
	return total
}

// describePlacement prints rev's ready instances per node, e.g.
// "node-1:1 node-2:1".
func describePlacement(pl map[string]int) string {
	var parts []string
	for n, c := range pl {
		parts = append(parts, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
