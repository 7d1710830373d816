package network

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

// Firewall keeps the node's instances apart with nftables rules the agent
// owns: one table, inet kiln-BRIDGE, replaced as a whole in one atomic nft
// transaction whenever what it allows changes, and deleted on Close.
//
// What it enforces (Kubernetes' deny-by-default NetworkPolicy, in kiln's
// terms):
//   - an instance cannot open connections to the node itself (etcd, the
//     agent, kiln's listeners, anything on the host): packets from the bridge
//     to the host are dropped unless they answer a connection the host made,
//     which is how the queue-proxy's requests and probes come back;
//   - an instance cannot open connections to other instances on the node,
//     whatever their namespace, unless both are in a namespace that opted in
//     to internal traffic (config-network's namespace-internal-traffic); then
//     instances of that namespace reach each other and nothing else.
//
// Traffic into an instance therefore only comes through its queue-proxy,
// from the gateway or the activator. The bridge forwards instance-to-instance
// frames at layer 2, so the rules rely on br_netfilter passing bridged IPv4
// through the inet forward hook (net.bridge.bridge-nf-call-iptables=1), which
// New checks.
type Firewall struct {
	table  string
	bridge string
	subnet string
	run    func(ctx context.Context, script string) error

	mu      sync.Mutex
	members map[string]member // instance id → its namespace and address
	open    map[string]bool   // namespaces that opted in
}

type member struct{ namespace, ip string }

// nftRun applies an nft script with `nft -f -`.
func nftRun(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// BridgeNetfilterPath is where the kernel says whether bridged IPv4 passes
// the IP hooks.
const BridgeNetfilterPath = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// NewFirewall installs the deny-by-default table for bridge and subnet.
func NewFirewall(ctx context.Context, bridge, subnet string) (*Firewall, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("instance isolation needs nftables (apt-get install nftables), or run the agent with --network-isolation=false: %w", err)
	}
	f := newFirewall(bridge, subnet, nftRun)
	if err := f.apply(ctx); err != nil {
		return nil, fmt.Errorf("install instance isolation rules: %w", err)
	}
	return f, nil
}

func newFirewall(bridge, subnet string, run func(context.Context, string) error) *Firewall {
	return &Firewall{table: "kiln-" + bridge, bridge: bridge, subnet: subnet, run: run,
		members: map[string]member{}, open: map[string]bool{}}
}

// Admit records instance id of namespace at ip. Only a namespace that opted
// in to internal traffic changes the rules; every other instance is covered
// by the default drop and costs no nft call on the start path.
func (f *Firewall) Admit(ctx context.Context, id, namespace, ip string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[id] = member{namespace, ip}
	if !f.open[namespace] {
		return nil
	}
	return f.apply(ctx)
}

// Forget drops instance id.
func (f *Firewall) Forget(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.members[id]
	delete(f.members, id)
	if !ok || !f.open[m.namespace] {
		return nil
	}
	return f.apply(ctx)
}

// OpenNamespaces sets the namespaces whose instances may reach each other.
func (f *Firewall) OpenNamespaces(ctx context.Context, namespaces []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	open := map[string]bool{}
	for _, ns := range namespaces {
		open[ns] = true
	}
	if maps.Equal(open, f.open) {
		return nil
	}
	f.open = open
	return f.apply(ctx)
}

// Close deletes the table: the node is back to no isolation. The agent
// calls it only when it stops its instances too.
func (f *Firewall) Close(ctx context.Context) error {
	return f.run(ctx, fmt.Sprintf("add table inet %s\ndelete table inet %s\n", f.table, f.table))
}

// apply replaces the table in one transaction. Callers hold mu.
func (f *Firewall) apply(ctx context.Context) error {
	return f.run(ctx, ruleset(f.table, f.bridge, f.subnet, f.groups()))
}

// groups lists, per open namespace with instances here, their addresses.
func (f *Firewall) groups() [][]string {
	byNS := map[string][]string{}
	for _, m := range f.members {
		if f.open[m.namespace] {
			byNS[m.namespace] = append(byNS[m.namespace], m.ip)
		}
	}
	var out [][]string
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		ips := byNS[ns]
		slices.Sort(ips)
		out = append(out, ips)
	}
	return out
}

// ruleset is the whole table as one nft script: creating and deleting the
// table first makes the replacement atomic whether or not it existed.
func ruleset(table, bridge, subnet string, groups [][]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", table, table)
	fmt.Fprintf(&b, "table inet %s {\n", table)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", bridge)
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s ct state established,related accept\n", subnet, subnet)
	for _, ips := range groups {
		set := "{ " + strings.Join(ips, ", ") + " }"
		fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s accept\n", set, set)
	}
	fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s drop\n\t}\n}\n", subnet, subnet)
	return b.String()
}
