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

// multiYAML is a two-container Service sharing an emptyDir: the container
// with the port serves (PORT=8081), the sidecar runs the same image on the
// image's default 8080 in the same network namespace.
const multiYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: multi
  namespace: default
spec:
  template:
    spec:
      containers:
        - name: app
          image: {{IMAGE}}
          ports:
            - containerPort: 8081
          env:
            - name: RESPONSE
              value: "Hello from a pod!"
          volumeMounts:
            - name: cache
              mountPath: /cache
        - name: sidecar
          image: {{IMAGE}}
          volumeMounts:
            - name: cache
              mountPath: /cache
      volumes:
        - name: cache
          emptyDir: {}
`

// TestClusterConfig drives `kiln config` against a running cluster: values
// round-trip with their source, feature flags gate what the API accepts and
// what the agent runs, and a network change reaches a live service's URL
// with every process left running.
func TestClusterConfig(t *testing.T) {
	c := startCluster(t)

	out := c.mustRun("config", "set", "autoscaler", "stable-window=90s")
	if !strings.Contains(out, "Config 'autoscaler' updated: stable-window=90s") {
		t.Fatalf("config set:\n%s", out)
	}
	out = c.mustRun("config", "get", "autoscaler")
	if !hasRow(out, "stable-window", "90s", "set") || !hasRow(out, "scale-to-zero-grace-period", "30s", "default") {
		t.Fatalf("config get autoscaler:\n%s", out)
	}
	if out, err := c.run("config", "set", "autoscaler", "stable-window=1s"); err == nil || !strings.Contains(out, "stable-window") {
		t.Fatalf("invalid value accepted or not named: %v\n%s", err, out)
	}

	// A multi-container Service with an emptyDir is refused while the flag
	// is off, naming it, and runs once it is on.
	file := filepath.Join(t.TempDir(), "multi.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(multiYAML, "{{IMAGE}}", c.image)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustRun("config", "set", "features", "multi-container=disabled")
	out, err := c.run("apply", "-f", file)
	if err == nil || !strings.Contains(out, "multi-container") {
		t.Fatalf("multi-container Service with the flag disabled: err %v\n%s", err, out)
	}
	c.mustRun("config", "set", "features", "multi-container=enabled", "kubernetes.podspec-volumes-emptydir=enabled")
	c.mustRun("apply", "-f", file)
	c.eventuallyBody("multi.default.example.com", "Hello from a pod!", 60*time.Second)

	// The external scheme changes the URL of a running service; nothing
	// restarts.
	url := func() string {
		var svc struct {
			Status struct {
				URL string `json:"url"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(c.mustRun("service", "describe", "multi", "-o", "json")), &svc); err != nil {
			t.Fatal(err)
		}
		return svc.Status.URL
	}
	if u := url(); u != "http://multi.default.example.com" {
		t.Fatalf("url before the change: %q", u)
	}
	c.mustRun("config", "set", "network", "default-external-scheme=https")
	testenv.EventuallyNil(t, 10*time.Second, func() error {
		if u := url(); u != "https://multi.default.example.com" {
			return fmt.Errorf("url after default-external-scheme=https: %q", u)
		}
		return nil
	})
	c.mustRun("config", "set", "domain", "kiln.test=")
	c.eventuallyBody("multi.default.kiln.test", "Hello from a pod!", 10*time.Second)
}

// hasRow reports whether a line of a table holds exactly these cells.
func hasRow(table string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) != len(cells) {
			continue
		}
		match := true
		for i := range f {
			if f[i] != cells[i] {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}
