package network

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/kiln-serving/kiln/internal/testenv"
)

func TestSetupTeardown(t *testing.T) {
	testenv.RequireRoot(t)
	bridge := fmt.Sprintf("kt%d", rand.IntN(1_000_000))
	subnet := testenv.FreeSubnet(t)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })

	n, err := New(context.Background(), Config{StateDir: t.TempDir(), BinDir: "/usr/lib/cni", BridgeName: bridge, Subnet: subnet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nsPath, ip, err := n.Setup(ctx, "inst-a")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("bad IP %q: %v", ip, err)
	}
	if !netip.MustParsePrefix(subnet).Contains(addr) {
		t.Errorf("IP %s not in %s", ip, subnet)
	}
	nsPath2, ip2, err := n.Setup(ctx, "inst-b")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Teardown(ctx, "inst-b", nsPath2)
	if ip2 == ip {
		t.Errorf("two instances got the same IP %s", ip)
	}
	if err := n.Teardown(ctx, "inst-a", nsPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsPath); !os.IsNotExist(err) {
		t.Errorf("netns %s still exists after teardown: %v", nsPath, err)
	}
	// Teardown is idempotent (crash recovery runs it blindly).
	if err := n.Teardown(ctx, "inst-a", nsPath); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"long bridge", Config{BridgeName: "a-bridge-name-too-long", Subnet: "10.1.0.0/16", BinDir: "/usr/lib/cni"}},
		{"bad subnet", Config{BridgeName: "kx", Subnet: "nope", BinDir: "/usr/lib/cni"}},
		{"missing plugins", Config{BridgeName: "kx", Subnet: "10.1.0.0/16", BinDir: "/nonexistent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.StateDir = t.TempDir()
			if _, err := New(context.Background(), tc.cfg); err == nil {
				t.Error("New accepted a bad config")
			}
		})
	}
}
