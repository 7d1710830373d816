package v1

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

type svcOpt func(*Service)

func svc(name string, opts ...svcOpt) *Service {
	s := &Service{
		Metadata: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: ServiceSpec{ConfigurationSpec: ConfigurationSpec{Template: RevisionTemplateSpec{
			Spec: RevisionSpec{Containers: []Container{{Image: "registry.local/hello:1"}}},
		}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func i64(v int64) *int64 { return &v }
func bptr(v bool) *bool  { return &v }

func withContainer(mut func(c *Container)) svcOpt {
	return func(s *Service) { mut(&s.Spec.Template.Spec.Containers[0]) }
}
func withTraffic(tt ...TrafficTarget) svcOpt {
	return func(s *Service) { s.Spec.Traffic = tt }
}
func withTemplateAnnotations(kv ...string) svcOpt {
	return func(s *Service) {
		s.Spec.Template.Metadata.Annotations = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			s.Spec.Template.Metadata.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func fields(fe *FieldError) []string {
	var out []string
	for _, c := range fe.Causes() {
		out = append(out, c.Field)
	}
	return out
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name string
		svc  *Service
		want []string // paths at fault, sorted
	}{
		{name: "valid", svc: svc("hello")},
		{name: "valid with port, env, scale", svc: svc("hello",
			withContainer(func(c *Container) {
				c.Ports = []ContainerPort{{ContainerPort: 9000}}
				c.Env = []EnvVar{{Name: "TARGET", Value: "x"}}
			}),
			withTemplateAnnotations(AutoscalingMinScaleAnnotation, "1", AutoscalingMaxScaleAnnotation, "3"))},
		{name: "missing name", svc: svc(""), want: []string{"metadata.name"}},
		{name: "uppercase name", svc: svc("Hello"), want: []string{"metadata.name"}},
		{name: "name starting with digit", svc: svc("1hello"), want: []string{"metadata.name"}},
		{name: "name too long", svc: svc(strings.Repeat("a", 64)), want: []string{"metadata.name"}},
		{name: "bad namespace", svc: svc("hello", func(s *Service) { s.Metadata.Namespace = "Bad_NS" }), want: []string{"metadata.namespace"}},
		{name: "empty image", svc: svc("hello", withContainer(func(c *Container) { c.Image = "" })),
			want: []string{"spec.template.spec.containers[0].image"}},
		{name: "no containers", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.Containers = nil }),
			want: []string{"spec.template.spec.containers"}},
		{name: "two containers", svc: svc("hello", func(s *Service) {
			s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers, Container{Image: "x"})
		}), want: []string{"spec.template.spec.containers[*].ports"}},
		{name: "two ports", svc: svc("hello", withContainer(func(c *Container) {
			c.Ports = []ContainerPort{{ContainerPort: 8080}, {ContainerPort: 8081}}
		})), want: []string{"spec.template.spec.containers[*].ports"}},
		{name: "reserved port", svc: svc("hello", withContainer(func(c *Container) {
			c.Ports = []ContainerPort{{ContainerPort: 8012}}
		})), want: []string{"spec.template.spec.containers[0].ports.containerPort"}},
		{name: "port out of range", svc: svc("hello", withContainer(func(c *Container) {
			c.Ports = []ContainerPort{{ContainerPort: 70000}}
		})), want: []string{"spec.template.spec.containers[0].ports.containerPort"}},
		{name: "reserved env", svc: svc("hello", withContainer(func(c *Container) {
			c.Env = []EnvVar{{Name: "OK", Value: "1"}, {Name: "K_REVISION", Value: "x"}, {Name: "PORT", Value: "1"}}
		})), want: []string{"spec.template.spec.containers[0].env[1].name", "spec.template.spec.containers[0].env[2].name"}},
		{name: "concurrency too high", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.ContainerConcurrency = i64(1001) }),
			want: []string{"spec.template.spec.containerConcurrency"}},
		{name: "negative concurrency", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.ContainerConcurrency = i64(-1) }),
			want: []string{"spec.template.spec.containerConcurrency"}},
		{name: "timeout zero means default", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.TimeoutSeconds = i64(0) })},
		{name: "negative timeout", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.TimeoutSeconds = i64(-1) }),
			want: []string{"spec.template.spec.timeoutSeconds"}},
		{name: "timeout too long", svc: svc("hello", func(s *Service) { s.Spec.Template.Spec.TimeoutSeconds = i64(601) }),
			want: []string{"spec.template.spec.timeoutSeconds"}},
		{name: "template name without prefix", svc: svc("hello", func(s *Service) { s.Spec.Template.Metadata.Name = "other-v1" }),
			want: []string{"spec.template.metadata.name"}},
		{name: "template name with prefix", svc: svc("hello", func(s *Service) { s.Spec.Template.Metadata.Name = "hello-v1" })},
		{name: "percent sum", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), Percent: i64(50)},
			TrafficTarget{RevisionName: "hello-00001", Percent: i64(40)})),
			want: []string{"spec.traffic"}},
		{name: "percent out of range", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), Percent: i64(101)})),
			want: []string{"spec.traffic", "spec.traffic[0].percent"}},
		{name: "duplicate tags and bad tag", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), Percent: i64(100), Tag: "a"},
			TrafficTarget{RevisionName: "hello-00001", Percent: i64(0), Tag: "a"},
			TrafficTarget{RevisionName: "hello-00001", Percent: i64(0), Tag: "Bad"})),
			want: []string{"spec.traffic[0].tag", "spec.traffic[1].tag", "spec.traffic[2].tag"}},
		{name: "both revision and latest", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), RevisionName: "hello-00001", Percent: i64(100)})),
			want: []string{"spec.traffic[0].latestRevision"}},
		{name: "neither revision nor latest", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(false), Percent: i64(100)})),
			want: []string{"spec.traffic[0].latestRevision"}},
		{name: "url in spec", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), Percent: i64(100), URL: "http://x"})),
			want: []string{"spec.traffic[0].url"}},
		{name: "configurationName in service", svc: svc("hello", withTraffic(
			TrafficTarget{LatestRevision: bptr(true), Percent: i64(100), ConfigurationName: "hello"})),
			want: []string{"spec.traffic[0].configurationName"}},
		{name: "min-scale not a number", svc: svc("hello", withTemplateAnnotations(AutoscalingMinScaleAnnotation, "x")),
			want: []string{"spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"}},
		{name: "negative max-scale", svc: svc("hello", withTemplateAnnotations(AutoscalingMaxScaleAnnotation, "-1")),
			want: []string{"spec.template.metadata.annotations.autoscaling.knative.dev/max-scale"}},
		{name: "min above max", svc: svc("hello", withTemplateAnnotations(AutoscalingMinScaleAnnotation, "5", AutoscalingMaxScaleAnnotation, "2")),
			want: []string{"spec.template.metadata.annotations.autoscaling.knative.dev/max-scale", "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"}},
		{name: "min with unbounded max", svc: svc("hello", withTemplateAnnotations(AutoscalingMinScaleAnnotation, "5", AutoscalingMaxScaleAnnotation, "0"))},
		{name: "wrong kind", svc: svc("hello", func(s *Service) { s.Kind = "Route" }), want: []string{"kind"}},
		{name: "every error at once", svc: svc("Bad", withContainer(func(c *Container) { c.Image = ""; c.Ports = []ContainerPort{{ContainerPort: 9090}} })),
			want: []string{"metadata.name", "spec.template.spec.containers[0].image", "spec.template.spec.containers[0].ports.containerPort"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tc.svc.SetDefaults(ctx)
			fe := tc.svc.Validate(ctx)
			if got := fields(fe); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("fields = %q, want %q (error: %v)", got, tc.want, fe)
			}
			if fe != nil && !errors.Is(fe, errdefs.ErrInvalidArgument) {
				t.Errorf("FieldError does not match ErrInvalidArgument")
			}
		})
	}
}

func TestRouteAndConfigurationValidate(t *testing.T) {
	ctx := context.Background()
	route := func(tt ...TrafficTarget) *Route {
		return &Route{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: RouteSpec{Traffic: tt}}
	}
	tests := []struct {
		name string
		obj  Object
		want []string
	}{
		{name: "route to configuration", obj: route(TrafficTarget{ConfigurationName: "c", Percent: i64(100)})},
		{name: "route split", obj: route(TrafficTarget{ConfigurationName: "c", Percent: i64(30)}, TrafficTarget{RevisionName: "c-00001", Percent: i64(70)})},
		{name: "route without traffic", obj: route(), want: []string{"spec.traffic"}},
		{name: "route target names neither", obj: route(TrafficTarget{Percent: i64(100)}),
			want: []string{"spec.traffic[0].configurationName", "spec.traffic[0].revisionName"}},
		{name: "route target names both", obj: route(TrafficTarget{RevisionName: "c-1", ConfigurationName: "c", Percent: i64(100)}),
			want: []string{"spec.traffic[0].configurationName", "spec.traffic[0].revisionName"}},
		{name: "configuration valid", obj: &Configuration{Metadata: metav1.ObjectMeta{Name: "c"},
			Spec: ConfigurationSpec{Template: RevisionTemplateSpec{Spec: RevisionSpec{Containers: []Container{{Image: "i"}}}}}}},
		{name: "configuration template prefix", obj: &Configuration{Metadata: metav1.ObjectMeta{Name: "c"},
			Spec: ConfigurationSpec{Template: RevisionTemplateSpec{Metadata: metav1.ObjectMeta{Name: "d-1"}, Spec: RevisionSpec{Containers: []Container{{Image: "i"}}}}}},
			want: []string{"spec.template.metadata.name"}},
		{name: "revision without image", obj: &Revision{Metadata: metav1.ObjectMeta{Name: "c-00001"}, Spec: RevisionSpec{Containers: []Container{{}}}},
			want: []string{"spec.containers[0].image"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.obj.SetDefaults(ctx)
			if got := fields(tc.obj.Validate(ctx)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("fields = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFieldErrorMessage(t *testing.T) {
	fe := ErrMissingField("image").ViaFieldIndex("containers", 0).ViaField("spec", "template", "spec").
		Also(ErrInvalidValue("Bad", "name").ViaField("metadata"), nil)
	want := "invalid value: Bad: metadata.name\nmissing field(s): spec.template.spec.containers[0].image"
	if fe.Error() != want {
		t.Fatalf("Error() = %q, want %q", fe.Error(), want)
	}
	var none *FieldError
	if none.Also(nil) != nil {
		t.Fatal("Also of nothing must stay nil")
	}
}

// A service account name that is not a DNS-1123 subdomain is reported as
// Knative's webhook reports it: the value and path, then apimachinery's
// explanation on the next line.
func TestServiceAccountNameMessage(t *testing.T) {
	ctx := context.Background()
	svc := &Service{
		Metadata: metav1.ObjectMeta{Name: "sa", Namespace: "default"},
	}
	svc.Spec.Template.Spec.Containers = []Container{{Image: "example.com/app"}}
	svc.Spec.Template.Spec.ServiceAccountName = "foo@bar.baz"
	svc.SetDefaults(ctx)
	fe := svc.Validate(ctx)
	want := "invalid value: foo@bar.baz: spec.template.spec.serviceAccountName\n" +
		strings.Join(validation.IsDNS1123Subdomain("foo@bar.baz"), "\n")
	if fe == nil || !strings.Contains(fe.Error(), want) {
		t.Fatalf("Validate = %v, want it to contain %q", fe, want)
	}
}
