package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/kiln-serving/kiln/internal/testenv"
)

const helloHost = "hello.default.example.com"

func (c *cluster) containers() int {
	c.t.Helper()
	cl, err := containerd.New(c.ctrdAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), c.namespace)
	cs, err := cl.Containers(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return len(cs)
}

// TestUserFlow is the walking skeleton as a user drives it: create, reply
// through the gateway, update to a new revision, list, describe, delete.
func TestUserFlow(t *testing.T) {
	c := startCluster(t)
	// Short autoscaler windows so the unrouted old revision reaches zero
	// within the test (Knative's defaults take 90 s).
	c.mustRun("config", "set", "autoscaler", "stable-window=6s", "scale-to-zero-grace-period=2s")

	out := c.mustRun("service", "create", "hello", "--image", c.image, "--env", "RESPONSE=Hello Serverless!")
	for _, want := range []string{"Creating service 'hello' in namespace 'default':", "Ready to serve.", "http://" + helloHost} {
		if !strings.Contains(out, want) {
			t.Fatalf("create output lacks %q:\n%s", want, out)
		}
	}
	c.eventuallyBody(helloHost, "Hello Serverless!", 10*time.Second)

	out = c.mustRun("service", "list")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "hello") || !strings.Contains(out, "hello-00001") || !strings.Contains(out, "True") {
		t.Fatalf("service list:\n%s", out)
	}

	var svc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Generation      int64  `json:"generation"`
			ResourceVersion string `json:"resourceVersion"`
			UID             string `json:"uid"`
		} `json:"metadata"`
		Status struct {
			URL                       string `json:"url"`
			LatestReadyRevisionName   string `json:"latestReadyRevisionName"`
			LatestCreatedRevisionName string `json:"latestCreatedRevisionName"`
			ObservedGeneration        int64  `json:"observedGeneration"`
			Conditions                []struct {
				Type, Status string
			} `json:"conditions"`
			Traffic []struct {
				RevisionName string `json:"revisionName"`
				Percent      int64  `json:"percent"`
			} `json:"traffic"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(c.mustRun("service", "describe", "hello", "-o", "json")), &svc); err != nil {
		t.Fatalf("describe -o json: %v", err)
	}
	if svc.APIVersion != "serving.knative.dev/v1" || svc.Kind != "Service" || svc.Metadata.UID == "" ||
		svc.Status.URL != "http://"+helloHost || svc.Status.LatestReadyRevisionName != "hello-00001" ||
		svc.Status.ObservedGeneration != 1 || len(svc.Status.Traffic) != 1 || svc.Status.Traffic[0].Percent != 100 {
		t.Fatalf("describe -o json = %+v", svc)
	}
	conds := map[string]string{}
	for _, cd := range svc.Status.Conditions {
		conds[cd.Type] = cd.Status
	}
	for _, ct := range []string{"Ready", "ConfigurationsReady", "RoutesReady"} {
		if conds[ct] != "True" {
			t.Fatalf("condition %s = %q; all: %v", ct, conds[ct], conds)
		}
	}
	if y := c.mustRun("service", "describe", "hello", "-o", "yaml"); !strings.Contains(y, "latestReadyRevisionName: hello-00001") {
		t.Fatalf("describe -o yaml:\n%s", y)
	}

	// Update: a new immutable revision; traffic moves to it.
	out = c.mustRun("service", "update", "hello", "--env", "RESPONSE=Bonjour")
	if !strings.Contains(out, "hello-00002") {
		t.Fatalf("update output lacks the new revision:\n%s", out)
	}
	c.eventuallyBody(helloHost, "Bonjour", 10*time.Second)
	out = c.mustRun("revision", "list")
	if !strings.Contains(out, "hello-00001") || !strings.Contains(out, "hello-00002") {
		t.Fatalf("revision list:\n%s", out)
	}
	out = c.mustRun("route", "list")
	if !strings.Contains(out, "hello") || !strings.Contains(out, "http://"+helloHost) {
		t.Fatalf("route list:\n%s", out)
	}

	// The unrouted old revision scales to zero; the new one keeps serving.
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		if n := c.containersOf("hello-00001"); n != 0 {
			return fmt.Errorf("hello-00001 still has %d containers after traffic moved", n)
		}
		return nil
	})
	// At zero or not, the routed revision still answers (through the
	// activator when it has scaled to zero).
	c.eventuallyBody(helloHost, "Bonjour", 10*time.Second)

	// Delete: instances stop, the route disappears from the edge.
	out = c.mustRun("service", "delete", "hello")
	if !strings.Contains(out, "deleted") {
		t.Fatalf("delete output:\n%s", out)
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		code, _, _ := c.get(helloHost)
		if n := c.containers(); code != 404 || n != 0 {
			return fmt.Errorf("after delete: gateway answers %d, %d containers remain", code, n)
		}
		return nil
	})
	if _, err := c.run("service", "describe", "hello"); err == nil {
		t.Fatal("describe of a deleted service succeeded")
	}
}

// TestApplySeedYAML applies the seeds' Service manifest unchanged but for
// the image, and reaches it through the gateway.
func TestApplySeedYAML(t *testing.T) {
	c := startCluster(t)
	b, err := os.ReadFile("testdata/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "hello.yaml")
	os.WriteFile(f, []byte(strings.ReplaceAll(string(b), "{{IMAGE}}", c.image)), 0o644)
	out := c.mustRun("apply", "-f", f)
	if !strings.Contains(out, "hello") {
		t.Fatalf("apply output:\n%s", out)
	}
	c.eventuallyBody(helloHost, "Hello Serverless!", 60*time.Second)
	// Applying the same file again changes nothing.
	out = c.mustRun("apply", "-f", f)
	if !strings.Contains(out, "unchanged") {
		t.Fatalf("second apply output:\n%s", out)
	}
}

// TestBadInput: each mistake is refused with the field named, exits
// non-zero and writes nothing.
func TestBadInput(t *testing.T) {
	c := startCluster(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"invalid name", []string{"service", "create", "Bad_Name", "--image", c.image, "--no-wait"}, "metadata.name"},
		{"empty image", []string{"service", "create", "noimage", "--image", "", "--no-wait"}, "image"},
		{"malformed env", []string{"service", "create", "badenv", "--image", c.image, "--env", "NOEQUALS", "--no-wait"}, "env"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.run(tc.args...)
			if err == nil {
				t.Fatalf("kiln %v succeeded:\n%s", tc.args, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
	list := c.mustRun("service", "list")
	for _, n := range []string{"Bad_Name", "noimage", "badenv"} {
		if strings.Contains(list, n) {
			t.Fatalf("a refused create left %s behind:\n%s", n, list)
		}
	}

	// Unknown field and malformed YAML via apply.
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: u\nspec:\n  template:\n    spec:\n      containers:\n        - image: x\n          imagePolicy: Always\n"), 0o644)
	if out, err := c.run("apply", "-f", unknown); err == nil || !strings.Contains(out, "imagePolicy") {
		t.Fatalf("unknown field: err=%v\n%s", err, out)
	}
	malformed := filepath.Join(dir, "bad.yaml")
	os.WriteFile(malformed, []byte("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: [\n"), 0o644)
	if out, err := c.run("apply", "-f", malformed); err == nil {
		t.Fatalf("malformed YAML accepted:\n%s", out)
	}

	// A stale resourceVersion is a conflict and changes nothing.
	c.mustRun("service", "create", "stale", "--image", c.image, "--env", "A=1", "--no-wait")
	old := c.mustRun("service", "describe", "stale", "-o", "yaml")
	c.mustRun("service", "update", "stale", "--env", "A=2", "--no-wait")
	staleFile := filepath.Join(dir, "stale.yaml")
	os.WriteFile(staleFile, []byte(strings.Replace(old, "value: \"1\"", "value: \"3\"", 1)), 0o644)
	if !strings.Contains(old, "resourceVersion:") || !strings.Contains(old, "value: \"1\"") {
		t.Fatalf("describe -o yaml lacks resourceVersion or the env value:\n%s", old)
	}
	out, err := c.run("apply", "-f", staleFile)
	if err == nil || !strings.Contains(out, "modified") {
		t.Fatalf("stale apply: err=%v\n%s", err, out)
	}
	if y := c.mustRun("service", "describe", "stale", "-o", "yaml"); !strings.Contains(y, "value: \"2\"") {
		t.Fatalf("stale apply changed the service:\n%s", y)
	}

	// Duplicate create.
	c.mustRun("service", "create", "dup", "--image", c.image, "--no-wait")
	out, err = c.run("service", "create", "dup", "--image", c.image, "--no-wait")
	if err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("duplicate create: err=%v\n%s", err, out)
	}
}

// TestCLIServerFailover: the CLI given several apiservers uses the next
// when one cannot be reached, and names each when none can.
func TestCLIServerFailover(t *testing.T) {
	c := startCluster(t)
	dead := fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
	kiln := func(servers string, args ...string) (string, error) {
		cmd := exec.Command(c.kiln, append([]string{"--server", servers, "--certificate-authority", c.caFile,
			"--token-file", c.tokenFile}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := kiln(dead+","+c.api, "service", "create", "failover", "--image", c.image); err != nil {
		t.Fatalf("create with the first apiserver down: %v\n%s", err, out)
	}
	if out, err := kiln(dead+","+c.api, "service", "list"); err != nil || !strings.Contains(out, "failover") {
		t.Fatalf("list with the first apiserver down: %v\n%s", err, out)
	}
	t.Setenv("KILN_SERVER", dead+","+c.api)
	cmd := exec.Command(c.kiln, "--certificate-authority", c.caFile, "--token-file", c.tokenFile, "service", "list")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "failover") {
		t.Fatalf("KILN_SERVER as a list: %v\n%s", err, out)
	}
	other := fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
	out, err := kiln(dead+","+other, "service", "list")
	if err == nil || !strings.Contains(out, dead) || !strings.Contains(out, other) {
		t.Fatalf("every apiserver down: %v, want an error naming both\n%s", err, out)
	}
	if out, err := kiln("127.0.0.1:7070", "service", "list"); err == nil || !strings.Contains(out, "--server") {
		t.Fatalf("a server that is not a URL: %v, want an error naming --server\n%s", err, out)
	}
}
