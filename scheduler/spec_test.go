package scheduler

import (
	"errors"
	"math/big"
	"reflect"
	"slices"
	"testing"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in       string
		milli    int64 // ceil(value*1000)
		mebibyte int64 // ceil(value/2^20)
		bad      bool
	}{
		{in: "100m", milli: 100, mebibyte: 1},
		{in: "1", milli: 1000, mebibyte: 1},
		{in: "0.5", milli: 500, mebibyte: 1},
		{in: "2500m", milli: 2500, mebibyte: 1},
		{in: "128Mi", milli: 128 << 20 * 1000, mebibyte: 128},
		{in: "1Gi", milli: 1 << 30 * 1000, mebibyte: 1024},
		{in: "1.5Gi", milli: 3 << 29 * 1000, mebibyte: 1536},
		{in: "128M", milli: 128e9, mebibyte: 123},
		{in: "134217728", milli: 134217728000, mebibyte: 128},
		{in: "1e3", milli: 1e6, mebibyte: 1},
		{in: "0", milli: 0, mebibyte: 0},
		{in: "abc", bad: true},
		{in: "", bad: true},
		{in: "-1", bad: true},
		{in: "1Mii", bad: true},
		{in: "1/2", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, err := ParseQuantity(tc.in)
			if tc.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := new(big.Rat).Set(v)
			if got := ceil(m.Mul(m, big.NewRat(1000, 1))); got != tc.milli {
				t.Errorf("milli = %d, want %d", got, tc.milli)
			}
			m = new(big.Rat).Set(v)
			if got := ceil(m.Mul(m, big.NewRat(1, 1<<20))); got != tc.mebibyte {
				t.Errorf("MiB = %d, want %d", got, tc.mebibyte)
			}
		})
	}
}

func TestSpecFromRevision(t *testing.T) {
	cc, ts := int64(4), int64(60)
	rev := &v1.Revision{
		Metadata: metav1.ObjectMeta{Name: "hello-00001", Namespace: "ns", Labels: map[string]string{
			v1.ServiceLabelKey: "hello", v1.ConfigurationLabelKey: "hello-cfg"}},
		Spec: v1.RevisionSpec{ContainerConcurrency: &cc, TimeoutSeconds: &ts, Containers: []v1.Container{{
			Image: "example.com/hello:1", Args: []string{"-v"},
			Ports: []v1.ContainerPort{{Name: "h2c", ContainerPort: 9090}},
			Env:   []v1.EnvVar{{Name: "B", Value: "2"}, {Name: "A", Value: "1"}, {Name: "S", ValueFrom: &v1.EnvVarSource{}}, {Name: "B", Value: "3"}},
			Resources: v1.ResourceRequirements{
				Requests: map[string]string{"cpu": "250m"},
				Limits:   map[string]string{"cpu": "1", "memory": "1Gi"},
			},
			ReadinessProbe: &v1.Probe{HTTPGet: &v1.HTTPGetAction{Path: "/ready"}},
		}}},
	}
	s, err := SpecFromRevision(rev)
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "ns" || s.Revision != "hello-00001" || s.Service != "hello" || s.Configuration != "hello-cfg" {
		t.Errorf("names: %+v", s)
	}
	if s.Image != "example.com/hello:1" || !slices.Equal(s.Args, []string{"-v"}) || s.Port != 9090 {
		t.Errorf("container: %+v", s)
	}
	if !slices.Equal(s.EnvOrder, []string{"B", "A"}) || s.Env["B"] != "3" || s.Env["A"] != "1" || len(s.Env) != 2 {
		t.Errorf("env = %v order %v", s.Env, s.EnvOrder)
	}
	if s.ContainerConcurrency != 4 || s.TimeoutSeconds != 60 || s.ReadinessPath != "/ready" || s.PortName != "h2c" ||
		s.Readiness == nil || s.Readiness.HTTPGet == nil || s.Readiness.HTTPGet.Path != "/ready" || s.Liveness != nil {
		t.Errorf("knobs: %+v", s)
	}
	// The cpu request wins over its limit; memory falls back to its limit.
	if s.MilliCPU != 250 || s.MemoryMiB != 1024 {
		t.Errorf("resources: cpu %dm mem %dMi", s.MilliCPU, s.MemoryMiB)
	}
	// Limits are the cgroup's, taken from limits only.
	if s.LimitMilliCPU != 1000 || s.LimitMemoryMiB != 1024 {
		t.Errorf("limits: cpu %dm mem %dMi", s.LimitMilliCPU, s.LimitMemoryMiB)
	}
	if s.Security != nil {
		t.Errorf("security without a securityContext: %+v", s.Security)
	}

	bare := &v1.Revision{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: v1.RevisionSpec{Containers: []v1.Container{{Image: "i"}}}}
	s, err = SpecFromRevision(bare)
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 8080 || s.TimeoutSeconds != 300 || s.MilliCPU != 0 || s.MemoryMiB != 0 || s.ReadinessPath != "" ||
		s.LimitMilliCPU != 0 || s.LimitMemoryMiB != 0 {
		t.Errorf("defaults: %+v", s)
	}

	bad := &v1.Revision{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: v1.RevisionSpec{Containers: []v1.Container{{
		Image: "i", Resources: v1.ResourceRequirements{Requests: map[string]string{"memory": "lots"}}}}}}
	if _, err := SpecFromRevision(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad quantity: err = %v", err)
	}
	if _, err := SpecFromRevision(&v1.Revision{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no container: err = %v", err)
	}
}

func TestSecurityOf(t *testing.T) {
	u := func(v int64) *int64 { return &v }
	b := func(v bool) *bool { return &v }
	tests := []struct {
		name string
		pod  *v1.PodSecurityContext
		c    *v1.SecurityContext
		want *cluster.Security
	}{
		{name: "nothing set"},
		{name: "container only", c: &v1.SecurityContext{
			RunAsUser: u(1000), RunAsNonRoot: b(true), ReadOnlyRootFilesystem: b(true), AllowPrivilegeEscalation: b(false),
			Capabilities: &v1.Capabilities{Drop: []string{"ALL"}, Add: []string{"CAP_NET_BIND_SERVICE"}}},
			want: &cluster.Security{RunAsUser: u(1000), RunAsNonRoot: true, ReadOnlyRootFilesystem: true,
				CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}},
		{name: "container wins over pod", pod: &v1.PodSecurityContext{RunAsUser: u(1), RunAsGroup: u(2), RunAsNonRoot: b(true),
			SupplementalGroups: []int64{7}, SeccompProfile: &v1.SeccompProfile{Type: "Unconfined"}},
			c:    &v1.SecurityContext{RunAsUser: u(3), RunAsNonRoot: b(false), SeccompProfile: &v1.SeccompProfile{Type: "RuntimeDefault"}},
			want: &cluster.Security{RunAsUser: u(3), RunAsGroup: u(2), SupplementalGroups: []int64{7}}},
		{name: "pod unconfined", pod: &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: "Unconfined"}},
			want: &cluster.Security{SeccompUnconfined: true}},
		{name: "allow escalation", c: &v1.SecurityContext{AllowPrivilegeEscalation: b(true)},
			want: &cluster.Security{AllowPrivilegeEscalation: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := securityOf(tc.pod, tc.c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("securityOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestProbeOf(t *testing.T) {
	svc := "grpc.health"
	tests := []struct {
		name string
		in   *v1.Probe
		want *cluster.Probe
	}{
		{name: "none"},
		{name: "defaulted tcp on the serving port", in: &v1.Probe{TCPSocket: &v1.TCPSocketAction{Port: v1.FromInt(0)}, SuccessThreshold: 1},
			want: &cluster.Probe{TCPSocket: true, SuccessThreshold: 1}},
		{name: "http with headers, scheme and timing",
			in: &v1.Probe{HTTPGet: &v1.HTTPGetAction{Path: "healthz", Scheme: "https", Port: v1.FromInt(8080),
				HTTPHeaders: []v1.HTTPHeader{{Name: "X-A", Value: "1"}}},
				InitialDelaySeconds: 2, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 1, FailureThreshold: 5},
			want: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/healthz", Scheme: "HTTPS",
				Headers: []cluster.HTTPHeader{{Name: "X-A", Value: "1"}}},
				InitialDelaySeconds: 2, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 1, FailureThreshold: 5}},
		{name: "http on another port", in: &v1.Probe{HTTPGet: &v1.HTTPGetAction{Port: v1.FromInt(9091)}},
			want: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/"}, Port: 9091}},
		{name: "http on the named serving port", in: &v1.Probe{HTTPGet: &v1.HTTPGetAction{Path: "/r", Port: &v1.IntOrString{IsString: true, StrVal: "http1"}}},
			want: &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/r"}}},
		{name: "exec", in: &v1.Probe{Exec: &v1.ExecAction{Command: []string{"/ko-app/readiness", "probe"}}, PeriodSeconds: 1},
			want: &cluster.Probe{Exec: []string{"/ko-app/readiness", "probe"}, PeriodSeconds: 1}},
		{name: "grpc", in: &v1.Probe{GRPC: &v1.GRPCAction{Port: 8080, Service: &svc}},
			want: &cluster.Probe{GRPC: &cluster.GRPCProbe{Service: svc}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := probeOf(tc.in, 8080); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("probeOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}
