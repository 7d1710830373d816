package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// adminGet fetches path from the gateway's admin listener.
func (c *cluster) adminGet(path string) (int, string, error) {
	resp, err := http.Get("http://" + c.gatewayAdmin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Seed 4.5.2: labels and annotations given to `service create` propagate
// Service → Route → the edge's route object, checked the seed's way (a grep
// of the edge's configuration) against the gateway's /config_dump.
func TestLabelsAndAnnotationsReachTheEdge(t *testing.T) {
	c := startCluster(t)
	// Envoy's /ready: PRE_INITIALIZING (503) until the first configuration
	// is served, then LIVE.
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		code, body, err := c.adminGet("/ready")
		if err == nil && code == 200 && body == "LIVE\n" {
			return nil
		}
		if err == nil && !(code == 503 && body == "PRE_INITIALIZING\n") {
			t.Fatalf("gateway /ready: %d %q", code, body)
		}
		return fmt.Errorf("gateway /ready: %d %q %v", code, body, err)
	})
	c.mustRun("service", "create", "tagged", "--image", c.image, "--env", "RESPONSE=tagged",
		"--label", "team=payments", "--annotation", "example.com/owner=alice")
	c.eventuallyBody("tagged.default.example.com", "tagged", 60*time.Second)

	// The Knative Route carries them (kn route describe -o yaml).
	route := c.mustRun("route", "describe", "tagged", "-o", "yaml")
	for _, want := range []string{"team: payments", "example.com/owner: alice"} {
		if !strings.Contains(route, want) {
			t.Errorf("route yaml lacks %q:\n%s", want, route)
		}
	}

	// The edge: `curl -s ADMIN/config_dump | grep ...`. The route is served,
	// so the config that serves it is the one dumped.
	_, dump, err := c.adminGet("/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"team": "payments"`, `"example.com/owner": "alice"`,
		`"ingressName": "tagged"`, `"ingressNamespace": "default"`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("config_dump lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("config_dump:\n%s", dump)
	}
}
