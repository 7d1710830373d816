package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// Instances are isolated by default (the agent's nftables rules): one cannot
// reach an instance of another namespace, one of its own namespace, or a
// port on the node; config-network's namespace-internal-traffic opens a
// namespace's instances to each other and to nothing else.
func TestInstancesAreIsolated(t *testing.T) {
	c := startCluster(t)
	img, err := imagebuild.BuildGoImage(context.Background(), "../../agent/testdata/toolbox")
	if err != nil {
		t.Fatal(err)
	}
	toolbox := c.registry + "/test/toolbox:latest"
	if _, err := imagebuild.Push(context.Background(), img, toolbox); err != nil {
		t.Fatal(err)
	}
	ksvc := func(name, ns, image, args string) string {
		return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
      - image: %s
%s        env:
        - name: RESPONSE
          value: %s
`, name, ns, image, args, name)
	}
	c.apply("box", ksvc("box", "team-a", toolbox, "        args: [serve]\n"))
	c.apply("peer", ksvc("peer", "team-a", c.image, ""))
	c.apply("other", ksvc("other", "team-b", c.image, ""))
	for _, h := range []string{"box.team-a", "peer.team-a", "other.team-b"} {
		name := strings.Split(h, ".")[0]
		c.eventuallyBody(h+".example.com", name, 90*time.Second)
	}

	st := c.etcdStore()
	ipOf := func(ns, rev string) string {
		var ip string
		testenv.Eventually(t, "the container IP of "+rev, 0, func() bool {
			ins, _ := instancesOf(st, ns, rev)
			for _, in := range ins {
				if in.Ready && in.ContainerIP != "" {
					ip = in.ContainerIP
					return true
				}
			}
			return false
		})
		return ip
	}
	peer := "http://" + net.JoinHostPort(ipOf("team-a", "peer-00001"), "8080") + "/"
	other := "http://" + net.JoinHostPort(ipOf("team-b", "other-00001"), "8080") + "/"
	// A port on the node, listening on every address, so only the rules
	// stand between it and the instances (the bridge's address is the node).
	lis, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "node") })}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	gw := netip.MustParsePrefix(c.subnet).Masked().Addr().Next()
	node := fmt.Sprintf("http://%s:%d/", gw, lis.Addr().(*net.TCPAddr).Port)

	fetch := func(u string) (int, string) {
		req, _ := http.NewRequest("GET", c.gateway+"/fetch?url="+url.QueryEscape(u), nil)
		req.Host = "box.team-a.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("fetch %s through box: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, u := range []string{peer, other, node} {
		if code, body := fetch(u); code == http.StatusOK {
			t.Errorf("box reached %s by default: %d %q", u, code, body)
		}
	}

	c.mustRun("config", "set", "network", "namespace-internal-traffic=team-a")
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if code, body := fetch(peer); code != http.StatusOK || body != "peer" {
			return fmt.Errorf("box → peer (same namespace, opened): %d %q", code, body)
		}
		return nil
	})
	for _, u := range []string{other, node} {
		if code, body := fetch(u); code == http.StatusOK {
			t.Errorf("box reached %s with only team-a open: %d %q", u, code, body)
		}
	}
}
