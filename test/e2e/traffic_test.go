package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// bgService renders the blue/green Service of seed section 4.4.6 with the
// given reply and traffic block (YAML lines under spec.traffic).
func bgService(image, reply, traffic string) string {
	s := fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: bg
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: %s
          env:
            - name: RESPONSE
              value: %q
`, image, reply)
	if traffic != "" {
		s += "  traffic:\n" + traffic
	}
	return s
}

func (c *cluster) apply(name, doc string) {
	c.t.Helper()
	p := filepath.Join(c.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.mustRun("apply", "-f", p)
}

type svcStatus struct {
	Status struct {
		LatestCreatedRevisionName string `json:"latestCreatedRevisionName"`
		LatestReadyRevisionName   string `json:"latestReadyRevisionName"`
		Traffic                   []struct {
			RevisionName string `json:"revisionName"`
			Tag          string `json:"tag"`
			Percent      int64  `json:"percent"`
			URL          string `json:"url"`
		} `json:"traffic"`
		Conditions []struct{ Type, Status, Reason string } `json:"conditions"`
	} `json:"status"`
}

func (c *cluster) serviceStatus(name string) svcStatus {
	c.t.Helper()
	var s svcStatus
	if err := json.Unmarshal([]byte(c.mustRun("service", "describe", name, "-o", "json")), &s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// eventuallyReady waits until the service's status has traffic matching want
// (revision=percent[#tag] entries in order) and Ready True.
func (c *cluster) eventuallyTraffic(name, want string, d time.Duration) svcStatus {
	c.t.Helper()
	var s svcStatus
	testenv.EventuallyNil(c.t, d, func() error {
		s = c.serviceStatus(name)
		var parts []string
		for _, t := range s.Status.Traffic {
			p := fmt.Sprintf("%s=%d", t.RevisionName, t.Percent)
			if t.Tag != "" {
				p += "#" + t.Tag
			}
			parts = append(parts, p)
		}
		got := strings.Join(parts, " ")
		ready := false
		for _, cd := range s.Status.Conditions {
			ready = ready || (cd.Type == "Ready" && cd.Status == "True")
		}
		if got == want && ready {
			return nil
		}
		return fmt.Errorf("service %s traffic %q (ready %v), want %q (Ready)", name, got, ready, want)
	})
	return s
}

// countReplies sends n requests to host and counts the bodies.
func (c *cluster) countReplies(host string, n int) map[string]int {
	c.t.Helper()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		code, body, err := c.get(host)
		if err != nil || code != 200 {
			c.t.Fatalf("request %d to %s: code=%d err=%v body=%q", i, host, code, err, body)
		}
		counts[strings.TrimSpace(body)]++
	}
	return counts
}

// TestBlueGreenTagsSplitAndGC drives seed section 4.4.6 as written (YAML
// applied step by step), checks a tag URL reaches exactly its revision at
// 0%, counts a 50/50 split over 400 requests through the gateway, uses kn's
// traffic flags, and lets config-gc collect the revisions left behind.
func TestBlueGreenTagsSplitAndGC(t *testing.T) {
	c := startCluster(t)
	const host = "bg.default.example.com"

	// 1-2. Deploy, find the first revision.
	c.apply("bg1", bgService(c.image, "blue", ""))
	first := c.eventuallyTraffic("bg", "bg-00001=100", 90*time.Second).Status.LatestCreatedRevisionName
	if first != "bg-00001" {
		t.Fatalf("first revision = %q", first)
	}
	// 3-4. Pin all traffic to it.
	c.apply("bg3", bgService(c.image, "blue", "    - revisionName: bg-00001\n      percent: 100\n"))
	c.eventuallyBody(host, "blue", 30*time.Second)
	// 5-6. A second revision; traffic stays pinned.
	c.apply("bg5", bgService(c.image, "green", "    - revisionName: bg-00001\n      percent: 100\n"))
	c.waitFor("second revision ready", 90*time.Second, func() bool {
		return c.serviceStatus("bg").Status.LatestReadyRevisionName == "bg-00002"
	})
	// 7-8. Stage it behind tag v2 at 0%: the main URL stays blue, the tag
	// URL answers green only.
	c.apply("bg7", bgService(c.image, "green", "    - revisionName: bg-00001\n      percent: 100\n    - revisionName: bg-00002\n      percent: 0\n      tag: v2\n"))
	s := c.eventuallyTraffic("bg", "bg-00001=100 bg-00002=0#v2", 30*time.Second)
	if u := s.Status.Traffic[1].URL; u != "http://v2-bg.default.example.com" {
		t.Fatalf("tag URL = %q", u)
	}
	c.eventuallyBody("v2-bg.default.example.com", "green", 30*time.Second)
	if got := c.countReplies("v2-bg.default.example.com", 50); got["green"] != 50 {
		t.Fatalf("tag URL replies %v", got)
	}
	if got := c.countReplies(host, 50); got["blue"] != 50 {
		t.Fatalf("main URL replies at 100/0: %v", got)
	}
	// 9. 50/50, counted over 400 requests.
	c.apply("bg9", bgService(c.image, "green", "    - revisionName: bg-00001\n      percent: 50\n    - revisionName: bg-00002\n      percent: 50\n      tag: v2\n"))
	c.eventuallyTraffic("bg", "bg-00001=50 bg-00002=50#v2", 30*time.Second)
	// The edge converges on the new split a moment after the status does.
	c.waitFor("the edge serving green on the main URL", 30*time.Second, func() bool { return c.countReplies(host, 20)["green"] > 0 })
	counts := c.countReplies(host, 400)
	t.Logf("50/50 split over 400 requests: %v", counts)
	for _, r := range []string{"blue", "green"} {
		if counts[r] < 160 || counts[r] > 240 {
			t.Fatalf("%s got %d of 400 (want 40-60%%): %v", r, counts[r], counts)
		}
	}
	// 10-11. All to the second revision; the first gets nothing.
	c.apply("bg10", bgService(c.image, "green", "    - revisionName: bg-00001\n      percent: 0\n    - revisionName: bg-00002\n      percent: 100\n      tag: v2\n"))
	c.eventuallyTraffic("bg", "bg-00001=0 bg-00002=100#v2", 30*time.Second)
	c.waitFor("the edge no longer serving blue on the main URL", 30*time.Second, func() bool { return c.countReplies(host, 10)["blue"] == 0 })
	if got := c.countReplies(host, 100); got["green"] != 100 {
		t.Fatalf("after switching: %v", got)
	}

	// kn's flags: tag the old revision (reachable at 0%), then untag and
	// send everything back to @latest.
	out := c.mustRun("service", "update", "bg", "--tag", "bg-00001=old")
	if !strings.Contains(out, "Service 'bg' with latest revision 'bg-00002' (unchanged) is available at URL:") {
		t.Fatalf("update --tag output:\n%s", out)
	}
	c.eventuallyBody("old-bg.default.example.com", "blue", 30*time.Second)
	c.mustRun("service", "update", "bg", "--untag", "old,v2", "--traffic", "@latest=100")
	c.eventuallyTraffic("bg", "bg-00002=100", 30*time.Second)
	if _, err := c.run("service", "update", "bg", "--untag", "nope"); err == nil {
		t.Fatal("untag of an unknown tag succeeded")
	}

	// Revision GC: keep at most one non-active revision, whatever its age.
	c.mustRun("config", "set", "gc", "min-non-active-revisions=0", "max-non-active-revisions=1",
		"retain-since-create-time=disabled", "retain-since-last-active-time=disabled")
	c.mustRun("service", "update", "bg", "--env", "RESPONSE=third")
	c.eventuallyBody(host, "third", 60*time.Second)
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		list := c.mustRun("revision", "list", "--service", "bg")
		if !strings.Contains(list, "bg-00001") && strings.Contains(list, "bg-00002") && strings.Contains(list, "bg-00003") {
			return nil
		}
		return fmt.Errorf("GC did not leave exactly bg-00002 and bg-00003:\n%s", list)
	})
	// no-gc protects a revision; --prune deletes what nothing references.
	out = c.mustRun("revision", "delete", "--prune", "bg")
	if !strings.Contains(out, "Revision 'bg-00002' deleted in namespace 'default'.") {
		t.Fatalf("prune:\n%s", out)
	}
}
