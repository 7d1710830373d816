package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
}

// Network attaches instances to the node bridge.
type Network struct {
	// mu serializes CNI calls. Each takes ~20ms, so little is lost, and
	// go-cni's race-build mutex (go-deadlock) cannot tell goroutines apart
	// on current Go and kills the process on two concurrent calls.
	mu       sync.Mutex
	cni      gocni.CNI
	netnsDir string
}

// New validates cfg and loads the CNI configuration. It does not create the
// bridge; the bridge plugin does on the first Setup.
func New(cfg Config) (*Network, error) {
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
	return &Network{cni: cni, netnsDir: netnsDir}, nil
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
