package commands_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	kcli "github.com/kiln-serving/kiln/cmd/kiln/commands"
)

func runKiln(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := kcli.Run(context.Background(), append([]string{"kiln", "--server", "http://127.0.0.1:1"}, args...), nil, &out, &errb)
	return code, out.String(), errb.String()
}

// The descriptor kn writes in offline mode (seed section 4.1.1), byte for byte.
const eventDisplayDescriptor = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  creationTimestamp: null
  name: event-display
  namespace: test
spec:
  template:
    metadata:
      annotations:
        client.knative.dev/user-image: quay.io/openshift-knative/knative-eventing-sources-event-display:latest
      creationTimestamp: null
    spec:
      containers:
      - image: quay.io/openshift-knative/knative-eventing-sources-event-display:latest
        name: ""
        resources: {}
status: {}
`

func TestOfflineTarget(t *testing.T) {
	dir := t.TempDir()
	img := "quay.io/openshift-knative/knative-eventing-sources-event-display:latest"
	code, out, errs := runKiln(t, "service", "create", "event-display", "--image", img, "--target", dir, "--namespace", "test")
	if code != 0 || out != "Service 'event-display' created in namespace 'test'.\n" {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "test", "ksvc", "event-display.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != eventDisplayDescriptor {
		t.Fatalf("descriptor:\n%s\nwant:\n%s", b, eventDisplayDescriptor)
	}
	code, out, errs = runKiln(t, "service", "describe", "event-display", "--target", dir, "--namespace", "test")
	if code != 0 || out != "Name:       event-display\nNamespace:  test\n" {
		t.Fatalf("describe: %d %q %q", code, out, errs)
	}
	// A single file target: .json writes JSON, the name picks no tree.
	jf := filepath.Join(dir, "my-service.json")
	if code, _, errs := runKiln(t, "service", "create", "hello", "--image", "img", "--target", jf); code != 0 {
		t.Fatalf("create json: %s", errs)
	}
	if b, _ := os.ReadFile(jf); !bytes.HasPrefix(b, []byte("{\n  \"apiVersion\": \"serving.knative.dev/v1\"")) {
		t.Fatalf("json descriptor: %s", b)
	}
	yf := filepath.Join(dir, "svc.yml")
	if code, _, errs := runKiln(t, "service", "create", "hello", "--image", "img", "--target", yf); code != 0 {
		t.Fatalf("create yml: %s", errs)
	}
	code, out, errs = runKiln(t, "service", "update", "hello", "--env", "A=1", "--tag", "@latest=cur", "--target", yf)
	if code != 0 || out != "Service 'hello' updated in namespace 'default'.\n" {
		t.Fatalf("update offline: %d %q %q", code, out, errs)
	}
	if b, _ := os.ReadFile(yf); !bytes.Contains(b, []byte("name: A")) || !bytes.Contains(b, []byte("tag: cur")) {
		t.Fatalf("updated descriptor:\n%s", b)
	}
	// Invalid input writes nothing.
	bad := filepath.Join(dir, "bad.yaml")
	if code, _, _ := runKiln(t, "service", "create", "hello", "--image", "img", "--port", "8012", "--target", bad); code == 0 {
		t.Fatal("invalid service written offline")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("invalid descriptor written")
	}
}

func TestServiceApplyAndExport(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("service", "apply", "hello", "--image", "img:1", "--env", "A=1")
	if !bytes.Contains([]byte(out), []byte("Service 'hello' created to latest revision")) {
		t.Fatalf("apply (create): %q", out)
	}
	if out := e.mustRun("service", "apply", "hello", "--image", "img:1", "--env", "A=1"); out != "Service 'hello' in namespace 'default' is unchanged.\n" {
		t.Fatalf("apply (same): %q", out)
	}
	out = e.mustRun("service", "apply", "hello", "--image", "img:2")
	if !bytes.Contains([]byte(out), []byte("Service 'hello' updated to latest revision")) {
		t.Fatalf("apply (update): %q", out)
	}
	if s := e.service("hello"); s.Spec.Template.Spec.Containers[0].Image != "img:2" || len(s.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Fatalf("apply did not replace the spec: %+v", s.Spec.Template.Spec.Containers[0])
	}
	exp := e.mustRun("service", "export", "hello", "-o", "yaml")
	for _, want := range []string{"apiVersion: serving.knative.dev/v1", "kind: Service", "name: hello", "image: img:2", "status: {}"} {
		if !bytes.Contains([]byte(exp), []byte(want)) {
			t.Fatalf("export lacks %q:\n%s", want, exp)
		}
	}
	for _, not := range []string{"uid:", "resourceVersion:", "observedGeneration", "conditions"} {
		if bytes.Contains([]byte(exp), []byte(not)) {
			t.Fatalf("export has %q:\n%s", not, exp)
		}
	}
	// The export re-creates the service elsewhere.
	f := filepath.Join(t.TempDir(), "hello.yaml")
	os.WriteFile(f, []byte(exp), 0o644)
	e.mustRun("service", "delete", "hello")
	if out := e.mustRun("service", "create", "-f", f); !bytes.Contains([]byte(out), []byte("Service 'hello' created")) {
		t.Fatalf("create from export: %q", out)
	}
}
