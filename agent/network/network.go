package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/pkg/netns"
	gocni "github.com/containerd/go-cni"
)

// Config configures the node's instance network. All fields are required
// (the agent fills defaults) and immutable.
type Config struct {
	// StateDir holds netns bind mounts (netns/) and IPAM leases (ipam/).
	StateDir string
	// BinDir holds the CNI plugin binaries (bridge, host-local, loopback).
	BinDir string
	// BridgeName is the Linux bridge, at most 15 characters.
	BridgeName string
	// Subnet is the IPv4 CIDR instances get addresses from.
	Subnet string
	// Isolation installs the Firewall: instances reach neither the node
	// nor each other. Optional; off only where nftables is unavailable.
	Isolation bool
}

// Network attaches instances to the node bridge.
type Network struct {
	// mu serializes CNI calls. Each takes ~20ms, so little is lost, and
	// go-cni's race-build mutex (go-deadlock) cannot tell goroutines apart
	// on current Go and kills the process on two concurrent calls.
	mu       sync.Mutex
	cni      gocni.CNI
	netnsDir string
	fw       *Firewall // nil without Config.Isolation
}

// New validates cfg, loads the CNI configuration and, with cfg.Isolation,
// installs the firewall. It does not create the bridge; the bridge plugin
// does on the first Setup.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if len(cfg.BridgeName) == 0 || len(cfg.BridgeName) > 15 {
		return nil, fmt.Errorf("bridge name %q: must be 1-15 characters", cfg.BridgeName)
	}
	prefix, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil || !prefix.Addr().Is4() {
		return nil, fmt.Errorf("subnet %q: want an IPv4 CIDR", cfg.Subnet)
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, p)); err != nil {
			return nil, fmt.Errorf("CNI plugin %s missing in %s (install containernetworking-plugins): %w", p, cfg.BinDir, err)
		}
	}
	netnsDir := filepath.Join(cfg.StateDir, "netns")
	ipamDir := filepath.Join(cfg.StateDir, "ipam")
	for _, d := range []string{netnsDir, ipamDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	conflist, err := confList(cfg.BridgeName, prefix.Masked().String(), ipamDir)
	if err != nil {
		return nil, err
	}
	// Plugin dir first: networks capture the CNI config when added. The
	// bridge network must be added before loopback so it gets eth0.
	cni, err := gocni.New(
		gocni.WithPluginDir([]string{cfg.BinDir}),
		gocni.WithMinNetworkCount(2),
		gocni.WithConfListBytes(conflist),
		gocni.WithLoNetwork,
	)
	if err != nil {
		return nil, fmt.Errorf("load CNI config: %w", err)
	}
	n := &Network{cni: cni, netnsDir: netnsDir}
	if cfg.Isolation {
		if b, err := os.ReadFile(BridgeNetfilterPath); err != nil || strings.TrimSpace(string(b)) != "1" {
			return nil, fmt.Errorf("instance isolation needs bridged traffic to pass nftables (%s = 1; load br_netfilter), or run the agent with --network-isolation=false", BridgeNetfilterPath)
		}
		if n.fw, err = NewFirewall(ctx, cfg.BridgeName, prefix.Masked().String()); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Admit tells the firewall instance id of namespace has address ip, for a
// new instance after Setup or an adopted one after an agent restart.
func (n *Network) Admit(ctx context.Context, id, namespace, ip string) error {
	if n.fw == nil {
		return nil
	}
	return n.fw.Admit(ctx, id, namespace, ip)
}

// OpenNamespaces sets the namespaces whose instances may reach each other
// (config-network's namespace-internal-traffic).
func (n *Network) OpenNamespaces(ctx context.Context, namespaces []string) error {
	if n.fw == nil {
		return nil
	}
	return n.fw.OpenNamespaces(ctx, namespaces)
}

// RemoveIsolation removes the firewall's rules. The agent calls it only
// when it stops its instances on exit; otherwise the rules stay to protect
// the instances it leaves running, and the next agent replaces them.
func (n *Network) RemoveIsolation(ctx context.Context) error {
	if n.fw == nil {
		return nil
	}
	return n.fw.Close(ctx)
}

func confList(bridge, subnet, ipamDir string) ([]byte, error) {
	// ipMasq is off: instances serve traffic that comes to them through the
	// queue-proxy and need no NAT of their own.
	return json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kiln-" + bridge,
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": subnet}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": ipamDir,
			},
		}},
	})
}

// Setup creates a network namespace for id, attaches it to the bridge and
// returns the namespace path and the instance's IPv4 address. On error
// nothing is left behind.
func (n *Network) Setup(ctx context.Context, id string) (nsPath, ip string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ns, err := netns.NewNetNS(n.netnsDir)
	if err != nil {
		return "", "", fmt.Errorf("create netns for %s: %w", id, err)
	}
	res, err := n.cni.Setup(ctx, id, ns.GetPath())
	if err != nil {
		_ = n.cni.Remove(ctx, id, ns.GetPath())
		_ = ns.Remove()
		return "", "", fmt.Errorf("CNI add for %s: %w", id, err)
	}
	if iface := res.Interfaces["eth0"]; iface != nil {
		for _, c := range iface.IPConfigs {
			if c.IP.To4() != nil {
				return ns.GetPath(), c.IP.String(), nil
			}
		}
	}
	_ = n.cni.Remove(ctx, id, ns.GetPath())
	_ = ns.Remove()
	return "", "", fmt.Errorf("CNI add for %s: no IPv4 address on eth0", id)
}

// Teardown detaches id's namespace from the bridge, frees its address and
// removes the namespace. It tolerates a namespace that is already gone, so
// it can clean up after a crash.
func (n *Network) Teardown(ctx context.Context, id, nsPath string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	if n.fw != nil {
		if err := n.fw.Forget(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("firewall forget %s: %w", id, err))
		}
	}
	if err := n.cni.Remove(ctx, id, nsPath); err != nil {
		errs = append(errs, fmt.Errorf("CNI del for %s: %w", id, err))
	}
	if nsPath != "" {
		if err := netns.LoadNetNS(nsPath).Remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove netns %s: %w", nsPath, err))
		}
	}
	return errors.Join(errs...)
}
