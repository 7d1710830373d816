package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// kubectl runs the real kubectl against the cluster with kubeconfig and
// returns its combined output and exit error.
func (c *cluster) kubectl(kubeconfig, stdin string, env []string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+c.dir), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kubeconfig writes a cluster-admin kubeconfig with `kiln admin kubeconfig`.
func (c *cluster) kubeconfig() string {
	c.t.Helper()
	path := filepath.Join(c.dir, "kubeconfig")
	c.mustRun("admin", "kubeconfig", "--output", path)
	return path
}

const kubectlKsvc = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: {{IMAGE}}
          env:
            - name: RESPONSE
              value: "{{RESPONSE}}"
`

// TestKubectl drives every oc command of the seed documents as a kubectl
// command against kiln's API with the real kubectl, and checks each effect
// on the app served through the gateway.
func TestKubectl(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is not installed (.ci/run installs it): %v", err)
	}
	c := startCluster(t)
	kc := c.kubeconfig()
	dir := t.TempDir()
	ksvc := func(response string) string {
		p := filepath.Join(dir, fmt.Sprintf("ksvc-%d.yaml", time.Now().UnixNano()))
		y := strings.NewReplacer("{{IMAGE}}", c.image, "{{RESPONSE}}", response).Replace(kubectlKsvc)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	must := func(stdin string, env []string, args ...string) string {
		t.Helper()
		out, err := c.kubectl(kc, stdin, env, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := c.kubectl(kc, "", nil, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("kubectl %s: want a failure with %q, got err=%v\n%s", strings.Join(args, " "), want, err, out)
		}
	}

	// Discovery: the server, the Knative resources and their short names.
	if out := must("", nil, "version", "-o", "yaml"); !strings.Contains(out, "serverVersion:") {
		t.Fatalf("kubectl version:\n%s", out)
	}
	if out := must("", nil, "api-resources"); !hasRow(out, "services", "kservice,ksvc", "serving.knative.dev/v1", "true", "Service") {
		t.Fatalf("api-resources:\n%s", out)
	}
	if out := must("", nil, "explain", "ksvc.spec.template"); !strings.Contains(out, "spec") || !strings.Contains(out, "metadata") {
		t.Fatalf("explain:\n%s", out)
	}

	// oc apply -f <filename>; oc get ksvc <service_name>
	if out := must("", nil, "apply", "-f", ksvc("Hello Serverless!")); !strings.Contains(out, "service.serving.knative.dev/hello created") {
		t.Fatalf("apply:\n%s", out)
	}
	must("", nil, "wait", "--for=condition=Ready", "ksvc/hello", "--timeout=60s")
	c.eventuallyBody(helloHost, "Hello Serverless!", 10*time.Second)
	out := must("", nil, "get", "ksvc", "hello")
	if !hasRow(out, "NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON") ||
		!hasRow(out, "hello", "http://"+helloHost, "hello-00001", "hello-00001", "True") {
		t.Fatalf("get ksvc:\n%s", out)
	}
	// oc get ksvc <service_name> -o=jsonpath='{.status.latestCreatedRevisionName}'
	if out := must("", nil, "get", "ksvc", "hello", "-o=jsonpath={.status.latestCreatedRevisionName}"); out != "hello-00001" {
		t.Fatalf("jsonpath latestCreatedRevisionName: %q", out)
	}
	if out := must("", nil, "get", "ksvc", "hello", "-o=jsonpath={.status.url}"); out != "http://"+helloHost {
		t.Fatalf("jsonpath url: %q", out)
	}
	fails(`services.serving.knative.dev "nope" not found`, "get", "ksvc", "nope")

	// The core/v1 views: the edge's Service (Knative's conformance tests map
	// port 80 to its nodePort), the Route's Service, the instance's Pod and
	// its log.
	gwPort := c.gateway[strings.LastIndex(c.gateway, ":")+1:]
	if out := must("", nil, "get", "svc", "-n", "knative-serving", "kiln-gateway", "-o=jsonpath={.spec.ports[?(@.port==80)].nodePort}"); out != gwPort {
		t.Fatalf("gateway nodePort %q, want %s", out, gwPort)
	}
	if out := must("", nil, "get", "svc", "hello", "-o=jsonpath={.metadata.labels.serving\\.knative\\.dev/route} {.metadata.labels.serving\\.knative\\.dev/service} {.spec.type}"); out != "hello hello ExternalName" {
		t.Fatalf("route service: %q", out)
	}
	if out := must("", nil, "get", "svc"); !hasRowPrefix(out, "hello", "ExternalName", "<none>", "hello.default.svc.cluster.local", "80/TCP") {
		t.Fatalf("get svc:\n%s", out)
	}
	// Knative's TestLabelPropagation and TestAnnotationPropagation: the
	// Route's Service takes the ksvc's labels and annotations (and its
	// creator), and keeps a key removed from the ksvc.
	must("", nil, "label", "ksvc", "hello", "juicy=yes")
	must("", nil, "annotate", "ksvc", "hello", "juicy=yes")
	svcMeta := func() string {
		out, _ := c.kubectl(kc, "", nil, "get", "svc", "hello", "-o=jsonpath={.metadata.labels.juicy} {.metadata.annotations.juicy} "+
			"{.metadata.labels.color} {.metadata.annotations.color} {.metadata.annotations.serving\\.knative\\.dev/creator}")
		return out
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if f := strings.Fields(svcMeta()); len(f) != 3 || f[0] != "yes" || f[1] != "yes" || f[2] == "" {
			return fmt.Errorf("route service labels and annotations: %q", svcMeta())
		}
		return nil
	})
	// Removing juicy and adding color in one change: once color reached the
	// Service, the change that dropped juicy from the Route reached it too.
	must("", nil, "label", "ksvc", "hello", "juicy-", "color=blue")
	must("", nil, "annotate", "ksvc", "hello", "juicy-", "color=blue")
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if out, _ := c.kubectl(kc, "", nil, "get", "route", "hello", "-o=jsonpath={.metadata.labels.juicy}{.metadata.annotations.juicy}"); out != "" {
			return fmt.Errorf("juicy still on the route: %q", out)
		}
		if f := strings.Fields(svcMeta()); len(f) != 5 || f[2] != "blue" || f[3] != "blue" {
			return fmt.Errorf("route service labels and annotations: %q", svcMeta())
		}
		return nil
	})
	if f := strings.Fields(svcMeta()); f[0] != "yes" || f[1] != "yes" {
		t.Fatalf("juicy left the route's service with the ksvc: %q", svcMeta())
	}
	out = must("", nil, "get", "pods", "-l", "serving.knative.dev/service=hello")
	if !hasRowPrefix(out, "hello-00001-deployment-", "2/2", "Running", "0") {
		t.Fatalf("get pods:\n%s", out)
	}
	pod := must("", nil, "get", "pods", "-l", "serving.knative.dev/service=hello", "-o=jsonpath={.items[0].metadata.name}")
	if !strings.HasPrefix(pod, "hello-00001-deployment-") {
		t.Fatalf("pod name %q", pod)
	}
	if out := must("", nil, "logs", pod, "--tail", "5"); !strings.Contains(out, "hello: serving on :") {
		t.Fatalf("kubectl logs %s:\n%s", pod, out)
	}
	if out := must("", nil, "logs", pod, "-c", "user-container"); !strings.Contains(out, "hello: serving on :") {
		t.Fatalf("kubectl logs -c user-container %s:\n%s", pod, out)
	}
	fails("MethodNotAllowed", "delete", "pod", pod)

	// A second client-side apply changes the app; patch, replace and
	// server-side apply each make a new revision that serves.
	must("", nil, "apply", "-f", ksvc("applied twice"))
	c.eventuallyBody(helloHost, "applied twice", 60*time.Second)
	must("", nil, "patch", "ksvc", "hello", "--type=json",
		`-p=[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"json-patched"}]`)
	c.eventuallyBody(helloHost, "json-patched", 60*time.Second)
	must("", nil, "patch", "ksvc", "hello", "--type=merge", `-p={"metadata":{"annotations":{"team":"a"}}}`)
	if out := must("", nil, "get", "ksvc", "hello", "-o=jsonpath={.metadata.annotations.team}"); out != "a" {
		t.Fatalf("merge patch: %q", out)
	}
	// Strategic merge patch is refused for custom kinds, as for Knative's CRDs.
	fails("application/strategic-merge-patch+json is not supported by serving.knative.dev/v1, Kind=Service", "patch", "ksvc", "hello", `-p={"metadata":{"labels":{"x":"y"}}}`)
	ssa := ksvc("server-side")
	fails("conflict", "apply", "--server-side", "--field-manager=ci", "-f", ssa)
	must("", nil, "apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", ssa)
	c.eventuallyBody(helloHost, "server-side", 60*time.Second)
	rep := ksvc("replaced")
	must("", nil, "replace", "-f", rep)
	c.eventuallyBody(helloHost, "replaced", 60*time.Second)
	if out := must("", nil, "get", "rev", "-l", "serving.knative.dev/service=hello", "-o", "name"); strings.Count(out, "revision.serving.knative.dev/hello-") < 4 {
		t.Fatalf("revisions of hello:\n%s", out)
	}

	// oc label ksvc <service_name> networking.knative.dev/visibility=cluster-local
	must("", nil, "label", "ksvc", "hello", "networking.knative.dev/visibility=cluster-local")
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		out, _ := c.kubectl(kc, "", nil, "get", "ksvc", "hello", "-o=jsonpath={.status.url}")
		if out != "http://hello.default.svc.cluster.local" {
			return fmt.Errorf("url after cluster-local label: %q", out)
		}
		return nil
	})
	must("", nil, "label", "ksvc", "hello", "networking.knative.dev/visibility-")
	c.eventuallyBody(helloHost, "replaced", 30*time.Second)

	// oc create secret tls <name> --cert --key --dry-run=client -o yaml | oc apply -f -
	mapped := "kubectl.example.org"
	certFile, keyFile, _ := selfSignedFiles(t, dir, mapped)
	manifest := must("", nil, "create", "secret", "tls", "hello-tls", "--cert="+certFile, "--key="+keyFile, "--dry-run=client", "-o", "yaml")
	if out := must(manifest, nil, "apply", "-f", "-"); !strings.Contains(out, "secret/hello-tls created") {
		t.Fatalf("secret apply:\n%s", out)
	}
	if out := must("", nil, "get", "secret", "hello-tls", "-o", "yaml"); strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "tls.key: L") {
		t.Fatalf("the key came back:\n%s", out)
	}
	// oc create secret tls without a pipe: client-go sends protobuf.
	if out := must("", nil, "create", "secret", "tls", "hello-tls-2", "--cert="+certFile, "--key="+keyFile); !strings.Contains(out, "secret/hello-tls-2 created") {
		t.Fatalf("secret create:\n%s", out)
	}

	// DomainMapping; oc get domainmapping <domain_name>
	dm := fmt.Sprintf(`apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: %s
  namespace: default
spec:
  ref:
    name: hello
    kind: Service
    apiVersion: serving.knative.dev/v1
`, mapped)
	must(dm, nil, "apply", "-f", "-")
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		out, _ := c.kubectl(kc, "", nil, "get", "domainmapping", mapped)
		if !hasRow(out, mapped, "http://"+mapped, "True") {
			return fmt.Errorf("get domainmapping:\n%s", out)
		}
		return nil
	})
	c.eventuallyBody(mapped, "replaced", 30*time.Second)

	// kubectl edit cm config-autoscaler -n knative-serving, non-interactively.
	editor := filepath.Join(dir, "editor.sh")
	os.WriteFile(editor, []byte(`#!/bin/sh
sed -i '/^  stable-window:/d' "$1"
if grep -q '^data:' "$1"; then sed -i 's/^data:.*/data:\n  stable-window: 75s/' "$1"; else printf 'data:\n  stable-window: 75s\n' >> "$1"; fi
`), 0o755)
	edited := must("", []string{"KUBE_EDITOR=" + editor}, "edit", "cm", "config-autoscaler", "-n", "knative-serving")
	if out := c.mustRun("config", "get", "autoscaler"); !hasRow(out, "stable-window", "75s", "set") {
		t.Fatalf("config after kubectl edit (%s):\n%s", edited, out)
	}
	// kubectl patch cm config-network (strategic merge, as for every core kind).
	must("", nil, "patch", "cm", "config-domain", "-n", "knative-serving", `-p={"data":{"kubectl.test":""}}`)
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		out, _ := c.kubectl(kc, "", nil, "get", "ksvc", "hello", "-o=jsonpath={.status.url}")
		if out != "http://hello.default.kubectl.test" {
			return fmt.Errorf("url after config-domain patch: %q", out)
		}
		return nil
	})
	c.eventuallyBody("hello.default.kubectl.test", "replaced", 30*time.Second)

	// Namespaces: create, use, delete with everything in them.
	must("", nil, "create", "namespace", "team-a")
	// Users' ConfigMaps, as kn's tests create them; the namespace's
	// deletion takes them too.
	if out := must("", nil, "create", "configmap", "test-cm", "--from-literal=k=v", "-n", "team-a"); !strings.Contains(out, "configmap/test-cm created") {
		t.Fatalf("create configmap:\n%s", out)
	}
	if out := must("", nil, "get", "cm", "test-cm", "-n", "team-a"); !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "NAME DATA AGE test-cm 1 ") {
		t.Fatalf("get cm:\n%s", out)
	}
	if out := must("", nil, "get", "cm", "-n", "team-a", "--no-headers", "-o=custom-columns=N:.metadata.name,D:.data.k"); !hasRow(out, "test-cm", "v") {
		t.Fatalf("get cm:\n%s", out)
	}
	must(strings.ReplaceAll(strings.NewReplacer("{{IMAGE}}", c.image, "{{RESPONSE}}", "team a").Replace(kubectlKsvc), "namespace: default", "namespace: team-a"), nil, "apply", "-f", "-")
	must("", nil, "wait", "--for=condition=Ready", "ksvc/hello", "-n", "team-a", "--timeout=60s")
	c.eventuallyBody("hello.team-a.kubectl.test", "team a", 30*time.Second)
	must("", nil, "get", "svc", "hello", "-n", "team-a")
	must("", nil, "delete", "namespace", "team-a", "--timeout=60s")
	fails("NotFound", "get", "ksvc", "hello", "-n", "team-a")
	fails("NotFound", "get", "cm", "test-cm", "-n", "team-a")
	// The controller removes the Services of the Routes the namespace's
	// deletion took.
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if out, err := c.kubectl(kc, "", nil, "get", "svc", "hello", "-n", "team-a"); err == nil || !strings.Contains(out, "NotFound") {
			return fmt.Errorf("route service of a deleted namespace: %v %s", err, out)
		}
		return nil
	})

	// kubectl delete: the app stops being served.
	if out := must("", nil, "delete", "ksvc", "hello"); !strings.Contains(out, `service.serving.knative.dev "hello" deleted`) {
		t.Fatalf("delete:\n%s", out)
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if code, _, _ := c.get("hello.default.kubectl.test"); code != 404 {
			return fmt.Errorf("deleted service still answers %d", code)
		}
		return nil
	})
}

// hasRowPrefix reports whether a line of table starts with cells, the
// first matched as a prefix (a generated name), the others exactly.
func hasRowPrefix(table string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < len(cells) || !strings.HasPrefix(f[0], cells[0]) {
			continue
		}
		match := true
		for i := 1; i < len(cells); i++ {
			match = match && f[i] == cells[i]
		}
		if match {
			return true
		}
	}
	return false
}
