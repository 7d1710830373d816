package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
)

// activatorRequests reads how many requests for ns/rev the activator at
// addr took (its GET /metrics), or -1 when it cannot tell.
func activatorRequests(client *http.Client, addr, ns, rev string) int {
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf("kiln_activator_requests_total{namespace=%q,revision=%q} ", ns, rev)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return 0
}

// TestActivatorSubsetting runs two activator processes: both register, the
// edge routes a revision at zero to both, a burst through the gateway
// succeeds with both taking part, and with --concurrency-limit 1 each
// holding its share of one slot never lets two requests into one
// container at once.
func TestActivatorSubsetting(t *testing.T) {
	c := startCluster(t)
	st := c.etcdStore()
	c.mustRun(append([]string{"config", "set", "autoscaler"}, autoscalerTimings...)...)
	c.waitFor("both activators registered", 30*time.Second, func() bool {
		kvs, _, err := st.List(context.Background(), store.ActivatorsPrefix)
		return err == nil && len(kvs) == len(c.activators)
	})

	c.mustRun("service", "create", "pair", "--image", c.image, "--env", "RESPONSE=pair", "--env", "DELAY=30ms",
		"--concurrency-limit", "1", "--scale-max", "3")
	host := "pair.default.example.com"
	c.eventuallyBody(host, "pair", 30*time.Second)
	c.waitFor("pair-00001 at zero", 60*time.Second, func() bool {
		return readyInstances(st, "default", "pair-00001") == 0 && c.containersOf("pair-00001") == 0
	})

	edge := c.roleClient(pki.RoleGateway)
	before := make([]int, len(c.activators))
	for i, a := range c.activators {
		before[i] = activatorRequests(edge, a, "default", "pair-00001")
	}
	rs := c.burst(host, "/", 60)
	if n, some := failures(rs); n > 0 {
		t.Fatalf("%d of 60 requests failed, e.g. %v", n, some)
	}
	for _, r := range rs {
		if r.maxConcurrent != 1 {
			t.Fatalf("a container saw %d requests at once (X-Max-Concurrent), want 1", r.maxConcurrent)
		}
	}
	for i, a := range c.activators {
		after := activatorRequests(edge, a, "default", "pair-00001")
		if before[i] < 0 || after <= before[i] {
			t.Errorf("activator %s took no part in the burst (requests %d -> %d)", a, before[i], after)
		}
		t.Logf("activator %s took %d of the burst's requests", a, after-before[i])
	}
}
