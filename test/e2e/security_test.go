package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// secureYAML runs the sample as uid/gid 1000 with every capability dropped
// but NET_BIND_SERVICE, a read-only root filesystem, no privilege
// escalation and a CPU request of 125m; {{IMAGE}} is replaced by the test.
const secureYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: secure
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: {{IMAGE}}
          env:
            - name: RESPONSE
              value: "locked down"
          resources:
            requests:
              cpu: 125m
          securityContext:
            runAsUser: 1000
            runAsGroup: 1000
            runAsNonRoot: true
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
              add: ["NET_BIND_SERVICE"]
`

// TestSecurityContext: a securityContext Knative allows is what the
// container's process runs with on the host, and one it refuses is refused
// by the API with the field named.
func TestSecurityContext(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	apply := func(name, yaml string) (string, error) {
		f := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(f, []byte(strings.ReplaceAll(yaml, "{{IMAGE}}", c.image)), 0o644); err != nil {
			t.Fatal(err)
		}
		return c.run("apply", "-f", f)
	}

	for _, tc := range []struct{ name, from, to, field string }{
		{"privileged", "allowPrivilegeEscalation: false", "privileged: true", "securityContext.privileged"},
		{"sysadmin", `add: ["NET_BIND_SERVICE"]`, `add: ["SYS_ADMIN"]`, "securityContext.capabilities.add[0]"},
	} {
		out, err := apply(tc.name, strings.Replace(strings.Replace(secureYAML, "name: secure", "name: "+tc.name, 1), tc.from, tc.to, 1))
		if err == nil || !strings.Contains(out, "spec.template.spec.containers[0]."+tc.field) || !strings.Contains(out, "must not set the field(s)") {
			t.Errorf("%s: err=%v, want the API to refuse %s:\n%s", tc.name, err, tc.field, out)
		}
	}
	if list := c.mustRun("service", "list"); strings.Contains(list, "privileged") || strings.Contains(list, "sysadmin") {
		t.Errorf("a refused service was stored:\n%s", list)
	}

	if out, err := apply("secure", secureYAML); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	c.eventuallyBody("secure.default.example.com", "locked down", 60*time.Second)

	status := procFile(t, c, "secure", "status")
	for _, want := range []string{
		`(?m)^Uid:\s+1000\s+1000\s+1000\s+1000$`,
		`(?m)^Gid:\s+1000\s+1000\s+1000\s+1000$`,
		`(?m)^CapEff:\s+0000000000000400$`, // NET_BIND_SERVICE only
		`(?m)^CapBnd:\s+0000000000000400$`,
		`(?m)^NoNewPrivs:\s+1$`,
		`(?m)^Seccomp:\s+2$`, // filter mode: the default profile
	} {
		if !regexp.MustCompile(want).MatchString(status) {
			t.Errorf("/proc/<pid>/status does not match %s:\n%s", want, status)
		}
	}

	// The CPU request weighs the container as the kubelet does: 125m is
	// cpu.shares 128 (cgroup v1), or the weight runc derives from it (v2).
	cg := procFile(t, c, "secure", "cgroup")
	file, want := "", ""
	for _, line := range strings.Split(strings.TrimSpace(cg), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case slices.Contains(strings.Split(parts[1], ","), "cpu"):
			file, want = filepath.Join("/sys/fs/cgroup", parts[1], parts[2], "cpu.shares"), "128"
		case parts[0] == "0" && parts[1] == "" && file == "":
			file, want = filepath.Join("/sys/fs/cgroup", parts[2], "cpu.weight"), "5" // 1 + (128-2)*9999/262142
		}
	}
	if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q (%v), want %s for a 125m request; /proc/<pid>/cgroup:\n%s", file, b, err, want, cg)
	}
}

// procFile is /proc/<pid>/NAME of the serving container of service's
// first instance, read on the host.
func procFile(t *testing.T, c *cluster, service, name string) string {
	t.Helper()
	cl, err := containerd.New(c.ctrdAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), c.namespace)
	ctrs, err := cl.Containers(ctx, fmt.Sprintf(`labels."kiln.dev/revision"~="^%s-"`, service))
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx)
		if err != nil || info.Labels["kiln.dev/instance"] == "" {
			continue
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", task.Pid(), name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("no serving container of %s in namespace %s", service, c.namespace)
	return ""
}
