package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// condition is one status condition as the CLI prints it in JSON.
type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// conditionsOf describes kind/name and returns its conditions by type.
func (c *cluster) conditionsOf(kind, name string) (map[string]condition, error) {
	out, err := c.run(kind, "describe", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var obj struct {
		Status struct {
			Conditions []condition `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		return nil, fmt.Errorf("describe %s %s: %w", kind, name, err)
	}
	conds := map[string]condition{}
	for _, cd := range obj.Status.Conditions {
		conds[cd.Type] = cd
	}
	return conds, nil
}

// TestContainerExitingFailsTheService: a container that exits before it is
// ever ready fails its Revision (ContainerHealthy=False, ExitCode<N>, the
// line it logged in the message), and the Service with both its
// Configuration and its Route, as Knative's conformance test
// TestContainerExitingMsg expects.
func TestContainerExitingFailsTheService(t *testing.T) {
	c := startCluster(t)
	// The sample exits 1 at once, logging why, on a DELAY it cannot parse.
	if out, err := c.run("service", "create", "crashy", "--image", c.image, "--env", "DELAY=nope"); err == nil {
		t.Fatalf("create of a crashing service succeeded:\n%s", out)
	}
	const logged = `hello: DELAY: time: invalid duration "nope"`
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		rev, err := c.conditionsOf("revision", "crashy-00001")
		if err != nil {
			return err
		}
		for _, typ := range []string{"Ready", "ContainerHealthy"} {
			cd := rev[typ]
			if cd.Status != "False" || cd.Reason != "ExitCode1" || !strings.HasPrefix(cd.Message, "Container failed with: ") || !strings.Contains(cd.Message, logged) {
				return fmt.Errorf("revision %s = %+v", typ, cd)
			}
		}
		svc, err := c.conditionsOf("service", "crashy")
		if err != nil {
			return err
		}
		want := map[string]string{"Ready": "RevisionMissing", "ConfigurationsReady": "RevisionFailed", "RoutesReady": "RevisionMissing"}
		for typ, reason := range want {
			if cd := svc[typ]; cd.Status != "False" || cd.Reason != reason {
				return fmt.Errorf("service %s = %+v, want False/%s", typ, cd, reason)
			}
		}
		if m := svc["ConfigurationsReady"].Message; !strings.Contains(m, logged) {
			return fmt.Errorf("service ConfigurationsReady message %q lacks %q", m, logged)
		}
		return nil
	})
}
