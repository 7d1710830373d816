package v1

import (
	"context"
	"reflect"
	"testing"
)

func withVolume(v Volume, m VolumeMount) svcOpt {
	return func(s *Service) {
		s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes, v)
		c := &s.Spec.Template.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, m)
	}
}

func i32(v int32) *int32 { return &v }

func TestSourceValidation(t *testing.T) {
	ro := func(name string) VolumeMount { return VolumeMount{Name: name, MountPath: "/" + name, ReadOnly: true} }
	const c0 = "spec.template.spec.containers[0]."
	const v0 = "spec.template.spec.volumes[0]."
	tests := []struct {
		name string
		svc  *Service
		want []string
	}{
		{name: "conformance's volumes and env", svc: svc("ok",
			withVolume(Volume{Name: "cm", ConfigMap: &ConfigMapVolumeSource{Name: "cm", Optional: bptr(false)}}, ro("cm")),
			withVolume(Volume{Name: "sec", Secret: &SecretVolumeSource{SecretName: "s", Items: []KeyToPath{{Key: "k", Path: "a/b", Mode: i32(0o400)}}, DefaultMode: i32(0o444)}}, ro("sec")),
			withVolume(Volume{Name: "p", Projected: &ProjectedVolumeSource{DefaultMode: i32(0o444), Sources: []VolumeProjection{
				{ConfigMap: &ProjectionSource{Name: "cm", Items: []KeyToPath{{Key: "other", Path: "another"}}}},
				{Secret: &ProjectionSource{Name: "s"}},
				{ServiceAccountToken: &ServiceAccountTokenProjection{Audience: "api", Path: "token"}},
			}}}, VolumeMount{Name: "p", MountPath: "/hello/token", SubPath: "token", ReadOnly: true}),
			withContainer(func(c *Container) {
				c.Env = []EnvVar{{Name: "A", ValueFrom: &EnvVarSource{SecretKeyRef: &KeySelector{Name: "s", Key: "a"}}}}
				c.EnvFrom = []EnvFromSource{{Prefix: "P_", ConfigMapRef: &EnvSourceRef{Name: "cm", Optional: bptr(true)}}}
			}))},
		// Knative's conformance mounts them without readOnly: defaulting
		// makes the mounts read-only.
		{name: "secret and projected volumes mounted without readOnly", svc: svc("w",
			withVolume(Volume{Name: "sec", Secret: &SecretVolumeSource{SecretName: "s"}}, VolumeMount{Name: "sec", MountPath: "/s"}),
			withVolume(Volume{Name: "p", Projected: &ProjectedVolumeSource{Sources: []VolumeProjection{{Secret: &ProjectionSource{Name: "s"}}}}}, VolumeMount{Name: "p", MountPath: "/p"}))},
		{name: "bad items", svc: svc("i",
			withVolume(Volume{Name: "cm", ConfigMap: &ConfigMapVolumeSource{Name: "cm", DefaultMode: i32(0o1777),
				Items: []KeyToPath{{Path: "/abs"}, {Key: "k", Path: "../up", Mode: i32(-1)}}}}, ro("cm"))),
			want: []string{v0 + "configMap.defaultMode", v0 + "configMap.items[0].key", v0 + "configMap.items[0].path",
				v0 + "configMap.items[1].mode", v0 + "configMap.items[1].path"}},
		{name: "missing names", svc: svc("n",
			withVolume(Volume{Name: "sec", Secret: &SecretVolumeSource{}}, ro("sec")),
			withVolume(Volume{Name: "cm", ConfigMap: &ConfigMapVolumeSource{Name: "Not_A_Name"}}, ro("cm"))),
			want: []string{v0 + "secret.secretName", "spec.template.spec.volumes[1].configMap.name"}},
		{name: "projection sources", svc: svc("p",
			withVolume(Volume{Name: "p", Projected: &ProjectedVolumeSource{Sources: []VolumeProjection{
				{},
				{Secret: &ProjectionSource{Name: "s"}, ConfigMap: &ProjectionSource{Name: "c"}},
				{ServiceAccountToken: &ServiceAccountTokenProjection{ExpirationSeconds: i64(60)}},
			}}}, ro("p"))),
			want: []string{v0 + "projected.sources[0].configMap", v0 + "projected.sources[0].secret", v0 + "projected.sources[0].serviceAccountToken",
				v0 + "projected.sources[1].configMap", v0 + "projected.sources[1].secret",
				v0 + "projected.sources[2].serviceAccountToken.expirationSeconds", v0 + "projected.sources[2].serviceAccountToken.path"}},
		{name: "env references", svc: svc("e", withContainer(func(c *Container) {
			c.Env = []EnvVar{
				{Name: "A", ValueFrom: &EnvVarSource{ConfigMapKeyRef: &KeySelector{Name: "cm"}}},
				{Name: "B", ValueFrom: &EnvVarSource{SecretKeyRef: &KeySelector{Key: "bad key"}}},
			}
			c.EnvFrom = []EnvFromSource{{SecretRef: &EnvSourceRef{}}, {ConfigMapRef: &EnvSourceRef{Name: "cm"}, Prefix: "1X"}}
		})),
			want: []string{c0 + "envFrom[0].secretRef.name", c0 + "envFrom[1].prefix",
				c0 + "env[0].valueFrom.configMapKeyRef.key", c0 + "env[1].valueFrom.secretKeyRef.key", c0 + "env[1].valueFrom.secretKeyRef.name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tc.svc.SetDefaults(ctx)
			fe := tc.svc.Validate(ctx)
			if got := fields(fe); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("fields = %q, want %q (error: %v)", got, tc.want, fe)
			}
		})
	}
}
