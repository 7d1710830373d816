package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestImagePinnedByDigest: a revision reports its image pinned by digest
// in the same repository (REPO@sha256:…), and a new revision made from
// that reference (what kn service update does without --image) pulls,
// runs and serves the same code.
func TestImagePinnedByDigest(t *testing.T) {
	c := startCluster(t)
	c.mustRun("service", "create", "hello", "--image", c.image, "--env", "RESPONSE=pinned")
	c.eventuallyBody(helloHost, "pinned", 10*time.Second)

	digestOf := func(rev string) string {
		t.Helper()
		var r struct {
			Status struct {
				ContainerStatuses []struct {
					Name        string `json:"name"`
					ImageDigest string `json:"imageDigest"`
				} `json:"containerStatuses"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(c.mustRun("revision", "describe", rev, "-o", "json")), &r); err != nil {
			t.Fatalf("describe %s: %v", rev, err)
		}
		if len(r.Status.ContainerStatuses) != 1 || r.Status.ContainerStatuses[0].Name != "user-container" {
			t.Fatalf("%s containerStatuses = %+v", rev, r.Status.ContainerStatuses)
		}
		return r.Status.ContainerStatuses[0].ImageDigest
	}
	pinned := digestOf("hello-00001")
	repo := strings.TrimSuffix(c.image, ":latest")
	if !strings.HasPrefix(pinned, repo+"@sha256:") {
		t.Fatalf("imageDigest %q, want %s@sha256:…", pinned, repo)
	}

	out := c.mustRun("service", "update", "hello", "--image", pinned, "--env", "RESPONSE=still pinned")
	if !strings.Contains(out, "hello-00002") {
		t.Fatalf("update output lacks the new revision:\n%s", out)
	}
	c.eventuallyBody(helloHost, "still pinned", 10*time.Second)
	if got := digestOf("hello-00002"); got != pinned {
		t.Fatalf("hello-00002 imageDigest %q, want %q", got, pinned)
	}
}
