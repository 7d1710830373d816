package network

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/netns"
	cnins "github.com/containernetworking/plugins/pkg/ns"

	"github.com/kiln-serving/kiln/internal/testenv"
)

func TestRuleset(t *testing.T) {
	got := ruleset("kiln-kiln0", "kiln0", "10.88.0.0/16", [][]string{{"10.88.0.2", "10.88.0.3"}})
	for _, want := range []string{
		"add table inet kiln-kiln0\ndelete table inet kiln-kiln0\n", // atomic replace
		`iifname "kiln0" ct state established,related accept`,
		`iifname "kiln0" drop`,
		"ip saddr 10.88.0.0/16 ip daddr 10.88.0.0/16 ct state established,related accept",
		"ip saddr { 10.88.0.2, 10.88.0.3 } ip daddr { 10.88.0.2, 10.88.0.3 } accept",
		"ip saddr 10.88.0.0/16 ip daddr 10.88.0.0/16 drop",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "} accept") > strings.Index(got, "10.88.0.0/16 drop") {
		t.Error("the open namespace's accept comes after the drop")
	}
}

// Only instances of an open namespace change the rules; the others are
// covered by the default drop without an nft call on their start path.
func TestFirewallAppliesOnlyWhenSomethingOpenChanges(t *testing.T) {
	var scripts []string
	f := newFirewall("kiln0", "10.88.0.0/16", func(_ context.Context, s string) error { scripts = append(scripts, s); return nil })
	ctx := context.Background()
	steps := []struct {
		do    func() error
		calls int
		open  string // an accept set the last script must hold, "" for none
	}{
		{func() error { return f.Admit(ctx, "a", "ns1", "10.88.0.2") }, 0, ""},
		{func() error { return f.OpenNamespaces(ctx, []string{"ns1"}) }, 1, "{ 10.88.0.2 }"},
		{func() error { return f.OpenNamespaces(ctx, []string{"ns1"}) }, 1, "{ 10.88.0.2 }"},
		{func() error { return f.Admit(ctx, "b", "ns1", "10.88.0.3") }, 2, "{ 10.88.0.2, 10.88.0.3 }"},
		{func() error { return f.Admit(ctx, "c", "ns2", "10.88.0.4") }, 2, "{ 10.88.0.2, 10.88.0.3 }"},
		{func() error { return f.Forget(ctx, "a") }, 3, "{ 10.88.0.3 }"},
		{func() error { return f.Forget(ctx, "c") }, 3, "{ 10.88.0.3 }"},
		{func() error { return f.OpenNamespaces(ctx, nil) }, 4, ""},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		if len(scripts) != s.calls {
			t.Fatalf("step %d: %d nft calls, want %d", i, len(scripts), s.calls)
		}
		if len(scripts) == 0 {
			continue
		}
		last := scripts[len(scripts)-1]
		if s.open != "" && !strings.Contains(last, "ip saddr "+s.open+" ip daddr "+s.open+" accept") {
			t.Fatalf("step %d: rules lack the open set %s:\n%s", i, s.open, last)
		}
		if s.open == "" && strings.Contains(last, "} accept") {
			t.Fatalf("step %d: an accept set remains:\n%s", i, last)
		}
	}
}

// On a real bridge with real nftables: instances reach neither the node
// nor each other, the node reaches them (the queue-proxy's path), and an
// open namespace's instances reach each other and nothing else.
func TestIsolationOnARealBridge(t *testing.T) {
	testenv.RequireRoot(t)
	bridge := fmt.Sprintf("kf%d", rand.IntN(1_000_000))
	subnet := testenv.FreeSubnet(t)
	ctx := context.Background()
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	n, err := New(ctx, Config{StateDir: t.TempDir(), BinDir: "/usr/lib/cni", BridgeName: bridge, Subnet: subnet, Isolation: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.RemoveIsolation(ctx) })
	type inst struct{ ns, path, ip string }
	insts := map[string]*inst{"a": {ns: "ns1"}, "b": {ns: "ns1"}, "c": {ns: "ns2"}}
	for _, id := range []string{"a", "b", "c"} {
		in := insts[id]
		if in.path, in.ip, err = n.Setup(ctx, id); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Teardown(ctx, id, in.path) })
		if err := n.Admit(ctx, id, in.ns, in.ip); err != nil {
			t.Fatal(err)
		}
	}
	// Every instance and the node listen on a port.
	listen := func(path string, addr string) string {
		var lis net.Listener
		do := func(cnins.NetNS) error {
			var err error
			lis, err = net.Listen("tcp", addr)
			return err
		}
		if path == "" {
			_ = do(nil)
		} else if err := netns.LoadNetNS(path).Do(do); err != nil {
			t.Fatal(err)
		}
		if lis == nil {
			t.Fatalf("listen %s failed", addr)
		}
		t.Cleanup(func() { lis.Close() })
		go func() {
			for {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return lis.Addr().String()
	}
	addr := map[string]string{}
	for id, in := range insts {
		addr[id] = listen(in.path, in.ip+":0")
	}
	gw := netip.MustParsePrefix(subnet).Masked().Addr().Next() // the bridge's own address
	addr["node"] = listen("", gw.String()+":0")

	reach := func(from, to string) bool {
		dial := func(cnins.NetNS) error {
			c, err := net.DialTimeout("tcp", addr[to], 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}
		if from == "node" {
			return dial(nil) == nil
		}
		return netns.LoadNetNS(insts[from].path).Do(dial) == nil
	}
	check := func(stage string, want map[[2]string]bool) {
		t.Helper()
		for pair, ok := range want {
			if got := reach(pair[0], pair[1]); got != ok {
				t.Errorf("%s: %s → %s reachable = %v, want %v", stage, pair[0], pair[1], got, ok)
			}
		}
	}
	check("default", map[[2]string]bool{
		{"node", "a"}: true, {"node", "c"}: true, // the queue-proxy's path
		{"a", "b"}: false, {"a", "c"}: false, {"c", "a"}: false,
		{"a", "node"}: false, {"c", "node"}: false,
	})
	if err := n.OpenNamespaces(ctx, []string{"ns1"}); err != nil {
		t.Fatal(err)
	}
	check("ns1 open", map[[2]string]bool{
		{"a", "b"}: true, {"b", "a"}: true,
		{"a", "c"}: false, {"c", "b"}: false, {"a", "node"}: false,
	})
	if err := n.OpenNamespaces(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check("closed again", map[[2]string]bool{{"a", "b"}: false})
	if err := n.RemoveIsolation(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "table", "inet", "kiln-"+bridge).CombinedOutput(); err == nil {
		t.Fatalf("table still there after RemoveIsolation:\n%s", out)
	}
	check("rules removed", map[[2]string]bool{{"a", "c"}: true})
}
