package commands_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	kcli "github.com/kiln-serving/kiln/cmd/kiln/commands"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/services/apiserver"
)

const token = "t0ken"

type env struct {
	t   *testing.T
	url string
	reg *registry.Registry
}

// newEnv serves the real apiserver over memstore, with a fake controller
// that walks each new service generation through kn's messages to Ready
// (or to Ready=False for images named "broken").
func newEnv(t *testing.T) *env {
	t.Helper()
	reg := registry.New(memstore.New())
	srv := httptest.NewServer(apiserver.New(reg, apiserver.Options{Token: token}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Watch before the test writes anything: a watch opened inside the
	// goroutine could start after the first create and never see it.
	events := reg.Services().Watch(ctx, "", 0)
	go fakeController(ctx, reg, events)
	return &env{t: t, url: srv.URL, reg: reg}
}

func fakeController(ctx context.Context, reg *registry.Registry, events <-chan registry.Event[v1.Service]) {
	for ev := range events {
		if ev.Err != nil || ev.Type == registry.Deleted || ev.Object == nil {
			continue
		}
		s := ev.Object
		gen := s.Metadata.Generation
		if s.Status.ObservedGeneration == gen {
			continue
		}
		now := time.Now()
		rev := fmt.Sprintf("%s-%05d", s.Metadata.Name, gen)
		steps := []func(*v1.Service){
			func(s *v1.Service) {
				s.Status.ObservedGeneration = gen
				s.Status.InitializeConditions(now)
				s.Status.MarkRouteNotYetReady(now)
			},
			func(s *v1.Service) {
				var cs v1.ConfigurationStatus
				cs.SetLatestCreatedRevisionName(rev, now)
				cs.MarkWaitingForRevision(s.Metadata.Name, now)
				s.Status.PropagateConfigurationStatus(&cs, now)
			},
			func(s *v1.Service) {
				var cs v1.ConfigurationStatus
				cs.SetLatestCreatedRevisionName(rev, now)
				if s.Spec.Template.Spec.Containers[0].Image == "broken" {
					cs.MarkLatestCreatedFailed(rev, "image pull failed", now)
					s.Status.PropagateConfigurationStatus(&cs, now)
					return
				}
				cs.SetLatestReadyRevisionName(rev, now)
				s.Status.PropagateConfigurationStatus(&cs, now)
				var rs v1.RouteStatus
				rs.MarkCondition(v1.RouteConditionAllTrafficAssigned, metav1.ConditionTrue, "", "", now)
				rs.MarkCondition(v1.RouteConditionIngressReady, metav1.ConditionTrue, "", "", now)
				rs.URL = "http://" + s.Metadata.Name + "." + s.Metadata.Namespace + ".example.com"
				p, latest := int64(100), true
				rs.Traffic = []v1.TrafficTarget{{RevisionName: rev, LatestRevision: &latest, Percent: &p}}
				s.Status.PropagateRouteStatus(&rs, now)
			},
		}
		_, _ = reg.Revisions().Create(ctx, &v1.Revision{
			Metadata: metav1.ObjectMeta{Name: rev, Namespace: s.Metadata.Namespace, Labels: map[string]string{
				v1.ServiceLabelKey: s.Metadata.Name, v1.ConfigurationGenerationLabel: fmt.Sprint(gen)}},
			Spec: s.Spec.Template.Spec,
		})
		for _, step := range steps {
			step(s)
			next, err := reg.Services().Update(ctx, s)
			if err != nil {
				break // a user write got in; its event restarts the walk
			}
			s = next
		}
	}
}

func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	var out, errw bytes.Buffer
	full := append([]string{"kiln", "--server", e.url, "--token", token}, args...)
	code := kcli.Run(context.Background(), full, strings.NewReader(""), &out, &errw)
	return out.String(), errw.String(), code
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("kiln %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e *env) service(name string) *v1.Service {
	e.t.Helper()
	s, err := e.reg.Services().Get(context.Background(), "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) count() int {
	items, _, err := e.reg.Services().List(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return len(items)
}

func TestServiceCreateWaitsAndMapsFlags(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("service", "create", "hello", "--image", "registry.local/hello:1",
		"--env", "TARGET=world", "--env", "A=x,y", "--port", "9000", "--annotation", "team=web", "--label", "tier=front",
		"--scale-min", "1", "--scale-max", "5", "--concurrency-limit", "10", "--concurrency-target", "7")

	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"Creating service 'hello' in namespace 'default':",
		"s The Route is still working to reflect the latest desired specification.",
		`s Configuration "hello" is waiting for a Revision to become ready.`,
		"s Ready to serve.",
		"Service 'hello' created to latest revision 'hello-00001' is available at URL:",
		"http://hello.default.example.com",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %q, want suffix %q", i, lines[i], w)
		}
	}
	if !strings.HasPrefix(lines[1], "  0.0") {
		t.Errorf("progress line not in kn's '%%7.3fs' form: %q", lines[1])
	}

	s := e.service("hello")
	ctr := s.Spec.Template.Spec.Containers[0]
	ann := s.Spec.Template.Metadata.Annotations
	if ctr.Image != "registry.local/hello:1" || ctr.Ports[0].ContainerPort != 9000 ||
		!reflect.DeepEqual(ctr.Env, []v1.EnvVar{{Name: "TARGET", Value: "world"}, {Name: "A", Value: "x,y"}}) {
		t.Errorf("container = %+v", ctr)
	}
	if ann[v1.AutoscalingMinScaleAnnotation] != "1" || ann[v1.AutoscalingMaxScaleAnnotation] != "5" ||
		ann[v1.AutoscalingTargetAnnotation] != "7" || ann["team"] != "web" || s.Metadata.Annotations["team"] != "web" {
		t.Errorf("annotations: template %v, service %v", ann, s.Metadata.Annotations)
	}
	if s.Metadata.Labels["tier"] != "front" || s.Spec.Template.Metadata.Labels["tier"] != "front" {
		t.Errorf("labels: %v / %v", s.Metadata.Labels, s.Spec.Template.Metadata.Labels)
	}
	if *s.Spec.Template.Spec.ContainerConcurrency != 10 {
		t.Errorf("containerConcurrency = %d", *s.Spec.Template.Spec.ContainerConcurrency)
	}

	// Duplicate create fails, --force replaces.
	_, errOut, code := e.run("service", "create", "hello", "--image", "img:2")
	if code == 0 || !strings.Contains(errOut, "Error: cannot create service 'hello' in namespace 'default' because the service already exists") {
		t.Fatalf("duplicate create: %d %s", code, errOut)
	}
	out = e.mustRun("service", "create", "hello", "--image", "img:2", "--force", "--no-wait")
	if out != "Service 'hello' replaced in namespace 'default'.\n" || e.service("hello").Spec.Template.Spec.Containers[0].Image != "img:2" {
		t.Fatalf("force: %q", out)
	}
}

func TestServiceCreateRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"invalid name", []string{"service", "create", "Hello_World", "--image", "img"}, "metadata.name"},
		{"empty image", []string{"service", "create", "hello", "--image", ""}, "spec.template.spec.containers[0].image"},
		{"no image", []string{"service", "create", "hello"}, "--image"},
		{"no name", []string{"service", "create", "--image", "img"}, "single argument"},
		{"reserved port", []string{"service", "create", "hello", "--image", "img", "--port", "8012"}, "8012 is a reserved port"},
		{"bad env", []string{"service", "create", "hello", "--image", "img", "--env", "NOVALUE"}, "invalid --env"},
		{"min above max", []string{"service", "create", "hello", "--image", "img", "--scale-min", "3", "--scale-max", "2"}, "min-scale=3 is greater than max-scale=2"},
		{"malformed yaml", []string{"service", "create", "-f", write("bad.yaml", "apiVersion: [")}, "malformed document"},
		{"unknown field", []string{"service", "create", "-f", write("unknown.yaml",
			"apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: hello}\nspec:\n  template:\n    spec:\n      containers:\n        - image: img\n          imagePolicy: x\n")},
			"spec.template.spec.containers[0].imagePolicy"},
		{"not a service", []string{"service", "create", "-f", write("route.yaml",
			"apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata: {name: r}\nspec: {traffic: [{configurationName: c, percent: 100}]}\n")}, "expected a Service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := e.run(tc.args...)
			if code == 0 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want error naming %q", code, out, errOut, tc.want)
			}
			if n := e.count(); n != 0 {
				t.Fatalf("a rejected create wrote %d services", n)
			}
		})
	}
}

func TestServiceCreateFromFileAndFailure(t *testing.T) {
	e := newEnv(t)
	p := filepath.Join(t.TempDir(), "hello.yaml")
	doc := `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env:
            - name: RESPONSE
              value: "Hello Serverless!"
`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("service", "create", "-f", p)
	if !strings.Contains(out, "Service 'hello' created to latest revision 'hello-00001'") {
		t.Fatalf("create -f: %s", out)
	}
	if e.service("hello").Spec.Template.Spec.Containers[0].Env[0].Value != "Hello Serverless!" {
		t.Fatal("descriptor env lost")
	}

	out, errOut, code := e.run("service", "create", "broken", "--image", "broken")
	if code == 0 || !strings.Contains(errOut, `Error: RevisionFailed: Revision "broken-00001" failed with message: image pull failed.`) {
		t.Fatalf("failed service: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestServiceUpdateListDescribeDelete(t *testing.T) {
	e := newEnv(t)
	e.mustRun("service", "create", "hello", "--image", "img:1", "--env", "A=1", "--env", "B=2")
	out := e.mustRun("service", "update", "hello", "--image", "img:2", "--env", "A-", "--env", "C=3", "--scale-max", "4")
	if !strings.HasPrefix(out, "Updating Service 'hello' in namespace 'default':\n") ||
		!strings.Contains(out, "Service 'hello' updated to latest revision 'hello-00002' is available at URL:\nhttp://hello.default.example.com\n") {
		t.Fatalf("update output:\n%s", out)
	}
	s := e.service("hello")
	if ctr := s.Spec.Template.Spec.Containers[0]; ctr.Image != "img:2" ||
		!reflect.DeepEqual(ctr.Env, []v1.EnvVar{{Name: "B", Value: "2"}, {Name: "C", Value: "3"}}) ||
		s.Spec.Template.Metadata.Annotations[v1.AutoscalingMaxScaleAnnotation] != "4" || s.Metadata.Generation != 2 {
		t.Fatalf("updated service = %+v", s)
	}
	if _, errOut, code := e.run("service", "update", "missing", "--image", "x"); code == 0 || !strings.Contains(errOut, "Error: ") {
		t.Fatalf("update of missing service: %d %s", code, errOut)
	}
	if _, errOut, code := e.run("service", "update", "hello", "--concurrency-limit", "5000"); code == 0 ||
		!strings.Contains(errOut, "spec.template.spec.containerConcurrency") {
		t.Fatalf("invalid update: %d %s", code, errOut)
	}

	out = e.mustRun("service", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME URL LATEST AGE CONDITIONS READY REASON" {
		t.Fatalf("list:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 9 || f[0] != "hello" || f[1] != "http://hello.default.example.com" ||
		f[2] != "hello-00002" || strings.Join(f[4:8], " ") != "3 OK / 3" || f[8] != "True" {
		t.Fatalf("list row: %q", lines[1])
	}
	if out := e.mustRun("service", "list", "-o", "json"); !strings.Contains(out, `"kind": "ServiceList"`) {
		t.Fatalf("list -o json: %s", out)
	}

	out = e.mustRun("service", "describe", "hello")
	for _, want := range []string{"Name:", "hello", "Namespace:", "URL:", "http://hello.default.example.com",
		"Revisions:", "100%  @latest (hello-00002) [2]", "Image:  img:2", "Conditions:", "++   Ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if out := e.mustRun("service", "describe", "hello", "-o", "yaml"); !strings.Contains(out, "kind: Service\n") || !strings.Contains(out, "image: img:2") {
		t.Fatalf("describe -o yaml:\n%s", out)
	}

	out = e.mustRun("revision", "list")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME SERVICE TRAFFIC TAGS GENERATION AGE CONDITIONS READY REASON" ||
		!strings.HasPrefix(lines[1], "hello-00002") || !strings.Contains(lines[1], "100%") || !strings.HasPrefix(lines[2], "hello-00001") {
		t.Fatalf("revision list:\n%s", out)
	}
	if out := e.mustRun("revision", "describe", "hello-00002"); !strings.Contains(out, "img:2") || !strings.Contains(out, "Service:") {
		t.Fatalf("revision describe:\n%s", out)
	}

	out = e.mustRun("service", "delete", "hello")
	if out != "Service 'hello' successfully deleted in namespace 'default'.\n" || e.count() != 0 {
		t.Fatalf("delete: %q", out)
	}
	if _, errOut, code := e.run("service", "delete", "hello"); code == 0 || errOut != "Error: service 'hello' not found in namespace 'default'\n" {
		t.Fatalf("second delete: %d %q", code, errOut)
	}
}

func TestApply(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "all.yaml")
	doc := func(image string) string {
		return `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ` + image + `
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: split
spec:
  traffic:
    - configurationName: hello
      percent: 100
`
	}
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(doc("img:1"))
	if out := e.mustRun("apply", "-f", p, "--dry-run"); out != "Service 'hello' created (dry run).\nRoute 'split' created (dry run).\n" || e.count() != 0 {
		t.Fatalf("dry run: %q (count %d)", out, e.count())
	}
	if out := e.mustRun("apply", "-f", p); out != "Service 'hello' created.\nRoute 'split' created.\n" {
		t.Fatalf("first apply: %q", out)
	}
	// Wait for the fake controller so the status writes do not race the compare.
	testenv.Eventually(t, "the fake controller to make hello Ready", 0, func() bool { return e.service("hello").IsReady() })
	if out := e.mustRun("apply", "-f", p); out != "Service 'hello' unchanged.\nRoute 'split' unchanged.\n" {
		t.Fatalf("second apply: %q", out)
	}
	write(doc("img:2"))
	if out := e.mustRun("apply", "-f", p); out != "Service 'hello' updated.\nRoute 'split' unchanged.\n" {
		t.Fatalf("third apply: %q", out)
	}
	if e.service("hello").Spec.Template.Spec.Containers[0].Image != "img:2" {
		t.Fatal("apply did not update the image")
	}

	// One bad document: nothing is written, the field is named.
	write(strings.Replace(doc("img:3"), "percent: 100", "percent: 90", 1))
	_, errOut, code := e.run("apply", "-f", p)
	if code == 0 || !strings.Contains(errOut, "spec.traffic") || e.service("hello").Spec.Template.Spec.Containers[0].Image != "img:2" {
		t.Fatalf("invalid apply: %d %q", code, errOut)
	}
	write("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: x}\nspec: {tmplate: {}}\n")
	if _, errOut, code := e.run("apply", "-f", p); code == 0 || !strings.Contains(errOut, "spec.tmplate") {
		t.Fatalf("unknown field: %d %q", code, errOut)
	}
}

func TestRouteCommands(t *testing.T) {
	e := newEnv(t)
	e.mustRun("service", "create", "hello", "--image", "img:1")
	// The fake controller does not write Routes; store one as the controller would.
	p, latest := int64(100), true
	r := &v1.Route{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default", Labels: map[string]string{v1.ServiceLabelKey: "hello"}},
		Spec: v1.RouteSpec{Traffic: []v1.TrafficTarget{{ConfigurationName: "hello", LatestRevision: &latest, Percent: &p}}}}
	r.Status.URL = "http://hello.default.example.com"
	r.Status.MarkCondition(v1.RouteConditionAllTrafficAssigned, metav1.ConditionTrue, "", "", time.Now())
	r.Status.MarkCondition(v1.RouteConditionIngressReady, metav1.ConditionTrue, "", "", time.Now())
	r.Status.Traffic = []v1.TrafficTarget{{RevisionName: "hello-00001", LatestRevision: &latest, Percent: &p}}
	if _, err := e.reg.Routes().Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("route", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		strings.Join(strings.Fields(lines[1]), " ") != "hello http://hello.default.example.com True" {
		t.Fatalf("route list:\n%s", out)
	}
	out = e.mustRun("route", "describe", "hello")
	if !strings.Contains(out, "100%  @latest (hello-00001)") || !strings.Contains(out, "Service:") {
		t.Fatalf("route describe:\n%s", out)
	}
}

func TestAuthAndConnectionErrors(t *testing.T) {
	e := newEnv(t)
	var out, errw bytes.Buffer
	code := kcli.Run(context.Background(), []string{"kiln", "--server", e.url, "--token", "wrong", "service", "list"}, nil, &out, &errw)
	if code == 0 || !strings.Contains(errw.String(), "Error: missing or invalid bearer token") {
		t.Fatalf("wrong token: %d %q", code, errw.String())
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	code = kcli.Run(context.Background(), []string{"kiln", "--server", e.url, "--token-file", tokenFile, "service", "list"}, nil, &out, &errw)
	if code != 0 || !strings.Contains(out.String(), "No services found.") {
		t.Fatalf("token file: %d %q %q", code, out.String(), errw.String())
	}
}

func TestClientMapsStatusErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := client.New(e.url, token)
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Image: "img"}}
	s.SetDefaults(ctx)
	var created v1.Service
	if err := cl.Create(ctx, v1.ResourceServices, "default", s, false, &created); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, v1.ResourceServices, "default", s, false, nil); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	stale := created
	stale.Metadata.ResourceVersion = "1"
	if err := cl.Update(ctx, v1.ResourceServices, "default", "hello", &stale, false, nil); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if err := cl.Get(ctx, v1.ResourceServices, "default", "nope", &v1.Service{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	bad := *s
	bad.Metadata.Name = "other"
	bad.Spec.Template.Spec.Containers = []v1.Container{{}}
	err := cl.Create(ctx, v1.ResourceServices, "default", &bad, false, nil)
	var apiErr *client.APIError
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.As(err, &apiErr) || len(apiErr.Causes) != 1 ||
		apiErr.Causes[0].Field != "spec.template.spec.containers[0].image" {
		t.Fatalf("invalid: %v", err)
	}
}

func TestInterspersed(t *testing.T) {
	app := kcli.NewApp()
	tests := []struct{ in, want string }{
		{"kiln service create hello --image x --no-wait", "kiln service create --image x --no-wait -- hello"},
		{"kiln -n prod service create hello --env=A=1 -p 80", "kiln -n prod service create --env=A=1 -p 80 -- hello"},
		{"kiln service list -o yaml", "kiln service list -o yaml"},
		{"kiln apply -f - --dry-run", "kiln apply -f - --dry-run"},
	}
	for _, tc := range tests {
		if got := strings.Join(kcli.Interspersed(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.in, got, tc.want)
		}
	}
}
