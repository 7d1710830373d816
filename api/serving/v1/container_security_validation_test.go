package v1

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/kiln-serving/kiln/api/config"
)

func strptr(s string) *string { return &s }

func withSecurity(sc *SecurityContext) svcOpt {
	return withContainer(func(c *Container) { c.SecurityContext = sc })
}

func withPodSecurity(sc *PodSecurityContext) svcOpt {
	return func(s *Service) { s.Spec.Template.Spec.SecurityContext = sc }
}

func TestSecurityContextValidate(t *testing.T) {
	const c0 = "spec.template.spec.containers[0].securityContext."
	const pod = "spec.template.spec.securityContext."
	securityOn, err := config.SnapshotFrom(map[string]map[string]string{
		config.NameFeatures: {config.FeatureSecurityContext: config.FeatureEnabled, config.FeatureInitContainers: config.FeatureEnabled},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		svc     *Service
		enabled bool // kubernetes.podspec-securitycontext (and init containers)
		want    []string
		message string // of the first cause, when set
	}{
		{name: "everything Knative allows on a container", svc: svc("hello", withSecurity(&SecurityContext{
			RunAsUser: i64(1000), RunAsGroup: i64(1000), RunAsNonRoot: bptr(true),
			ReadOnlyRootFilesystem: bptr(true), AllowPrivilegeEscalation: bptr(false),
			Capabilities:   &Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}},
			SeccompProfile: &SeccompProfile{Type: "RuntimeDefault"},
		}))},
		{name: "CAP_ prefix and named drops", svc: svc("hello", withSecurity(&SecurityContext{
			Capabilities: &Capabilities{Drop: []string{"NET_RAW", "CAP_CHOWN"}, Add: []string{"CAP_NET_BIND_SERVICE"}},
		}))},
		{name: "privileged", svc: svc("hello", withSecurity(&SecurityContext{Privileged: bptr(false)})),
			want: []string{c0 + "privileged"}, message: "must not set the field(s)"},
		{name: "seLinuxOptions and procMount", svc: svc("hello", withSecurity(&SecurityContext{
			SELinuxOptions: &SELinuxOptions{Type: "spc_t"}, ProcMount: strptr("Unmasked")})),
			want: []string{c0 + "procMount", c0 + "seLinuxOptions"}},
		{name: "SYS_ADMIN added", svc: svc("hello", withSecurity(&SecurityContext{
			Capabilities: &Capabilities{Add: []string{"NET_BIND_SERVICE", "SYS_ADMIN"}}})),
			want: []string{c0 + "capabilities.add[1]"}, message: "must not set the field(s)"},
		{name: "ALL added", svc: svc("hello", withSecurity(&SecurityContext{
			Capabilities: &Capabilities{Add: []string{"ALL"}}})),
			want: []string{c0 + "capabilities.add[0]"}},
		{name: "lower-case all dropped", svc: svc("hello", withSecurity(&SecurityContext{
			Capabilities: &Capabilities{Drop: []string{"all", "net raw"}}})),
			want: []string{c0 + "capabilities.drop[0]", c0 + "capabilities.drop[1]"}},
		{name: "uid out of range", svc: svc("hello", withSecurity(&SecurityContext{RunAsUser: i64(-1), RunAsGroup: i64(1 << 31)})),
			want: []string{c0 + "runAsGroup", c0 + "runAsUser"}},
		{name: "localhost seccomp", svc: svc("hello", withSecurity(&SecurityContext{SeccompProfile: &SeccompProfile{Type: "Localhost", LocalhostProfile: strptr("p.json")}})),
			want: []string{c0 + "seccompProfile.type"}},
		{name: "unknown seccomp type", svc: svc("hello", withSecurity(&SecurityContext{SeccompProfile: &SeccompProfile{Type: "Whatever"}})),
			want: []string{c0 + "seccompProfile.type"}},
		{name: "init container privileged", svc: svc("hello", func(s *Service) {
			s.Spec.Template.Spec.InitContainers = []Container{{Name: "init", Image: "registry.local/init:1",
				SecurityContext: &SecurityContext{Privileged: bptr(true)}}}
		}), enabled: true, want: []string{"spec.template.spec.initContainers[0].securityContext.privileged"}},

		{name: "subPath leaving the volume", svc: svc("hello", func(s *Service) {
			s.Spec.Template.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolumeSource{}}}
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []VolumeMount{
				{Name: "v", MountPath: "/a", SubPath: "x/../../etc"},
				{Name: "v", MountPath: "/b", SubPath: "/etc"},
				{Name: "v", MountPath: "/c", SubPath: "x/y..z"},
			}
		}), want: []string{"spec.template.spec.containers[0].volumeMounts[0].subPath", "spec.template.spec.containers[0].volumeMounts[1].subPath"}},
		{name: "pod seccomp is always allowed", svc: svc("hello", withPodSecurity(&PodSecurityContext{
			SeccompProfile: &SeccompProfile{Type: "RuntimeDefault"}}))},
		{name: "pod runAsUser needs the feature", svc: svc("hello", withPodSecurity(&PodSecurityContext{
			RunAsUser: i64(1000), RunAsNonRoot: bptr(true)})),
			want: []string{pod + "runAsNonRoot", pod + "runAsUser"}, message: "must not set the field(s)"},
		{name: "pod fields with the feature", enabled: true, svc: svc("hello", withPodSecurity(&PodSecurityContext{
			RunAsUser: i64(1000), RunAsGroup: i64(1000), RunAsNonRoot: bptr(true), SupplementalGroups: []int64{5}}))},
		{name: "pod fields never allowed", enabled: true, svc: svc("hello", withPodSecurity(&PodSecurityContext{
			FSGroup: i64(1), SELinuxOptions: &SELinuxOptions{}, Sysctls: []Sysctl{{Name: "net.core.somaxconn", Value: "1"}}})),
			want: []string{pod + "fsGroup", pod + "seLinuxOptions", pod + "sysctls"}},
		{name: "pod group out of range", enabled: true, svc: svc("hello", withPodSecurity(&PodSecurityContext{
			SupplementalGroups: []int64{-3}})),
			want: []string{pod + "supplementalGroups[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.enabled {
				ctx = config.WithSnapshot(ctx, securityOn)
			}
			tc.svc.SetDefaults(ctx)
			fe := tc.svc.Validate(ctx)
			got := fields(fe)
			sort.Strings(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("fields = %v, want %v (%v)", got, tc.want, fe)
			}
			if tc.message != "" && fe.Causes()[0].Message != tc.message {
				t.Errorf("message = %q, want %q", fe.Causes()[0].Message, tc.message)
			}
		})
	}
}
