package scheduler

import (
	"reflect"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
)

func TestSpecFromRevisionPodExtras(t *testing.T) {
	rev := &v1.Revision{
		Metadata: metav1.ObjectMeta{Name: "multi-00001", Namespace: "ns"},
		Spec: v1.RevisionSpec{
			Containers: []v1.Container{
				{Name: "side", Image: "side:1", Args: []string{"serve"}, Env: []v1.EnvVar{{Name: "X", Value: "1"}},
					VolumeMounts: []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "secret", MountPath: "/s"}}},
				{Name: "main", Image: "main:1", Ports: []v1.ContainerPort{{ContainerPort: 8081}},
					VolumeMounts: []v1.VolumeMount{{Name: "scratch", MountPath: "/tmp/s", SubPath: "a"}, {Name: "data", MountPath: "/data", ReadOnly: true}}},
			},
			InitContainers: []v1.Container{{Name: "setup", Image: "init:1", Command: []string{"/bin/setup"},
				VolumeMounts: []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
			Volumes: []v1.Volume{
				{Name: "scratch", EmptyDir: &v1.EmptyDirVolumeSource{Medium: "Memory", SizeLimit: "64Mi"}},
				{Name: "data", PersistentVolumeClaim: &v1.PVCVolumeSource{ClaimName: "pv1", ReadOnly: true}},
				{Name: "secret", Secret: &v1.SecretVolumeSource{SecretName: "s"}},
			},
		},
	}
	s, err := SpecFromRevision(rev)
	if err != nil {
		t.Fatal(err)
	}
	// The container with the port serves, wherever it is in the list.
	if s.Image != "main:1" || s.Port != 8081 || s.ContainerName != "main" {
		t.Errorf("serving container: image %q port %d name %q", s.Image, s.Port, s.ContainerName)
	}
	wantMounts := []cluster.VolumeMount{{Volume: "scratch", Path: "/tmp/s", SubPath: "a"}, {Volume: "data", Path: "/data", ReadOnly: true}}
	if !reflect.DeepEqual(s.Mounts, wantMounts) {
		t.Errorf("mounts %+v", s.Mounts)
	}
	wantSidecars := []cluster.ContainerSpec{{Name: "side", Image: "side:1", Args: []string{"serve"},
		Env: map[string]string{"X": "1"}, EnvOrder: []string{"X"},
		Mounts: []cluster.VolumeMount{{Volume: "scratch", Path: "/scratch"}, {Volume: "secret", Path: "/s"}}}}
	if !reflect.DeepEqual(s.Sidecars, wantSidecars) {
		t.Errorf("sidecars %+v", s.Sidecars)
	}
	if len(s.InitContainers) != 1 || s.InitContainers[0].Name != "setup" || s.InitContainers[0].Command[0] != "/bin/setup" ||
		len(s.InitContainers[0].Mounts) != 1 {
		t.Errorf("init containers %+v", s.InitContainers)
	}
	wantVols := []cluster.Volume{
		{Name: "scratch", EmptyDir: &cluster.EmptyDirVolume{Medium: "Memory", SizeLimitMiB: 64}},
		{Name: "data", PersistentVolumeClaim: &cluster.ClaimVolume{ClaimName: "pv1", ReadOnly: true}},
		{Name: "secret", Secret: &cluster.KeysVolume{Name: "s"}},
	}
	if !reflect.DeepEqual(s.Volumes, wantVols) {
		t.Errorf("volumes %+v", s.Volumes)
	}

	bare := &v1.Revision{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: v1.RevisionSpec{Containers: []v1.Container{{Name: "user-container", Image: "i"}}}}
	if s, _ := SpecFromRevision(bare); s.Sidecars != nil || s.InitContainers != nil || s.Volumes != nil || s.Mounts != nil || s.ContainerName != "user-container" {
		t.Errorf("a one-container revision grew extras: %+v", s)
	}
}

// ConfigMaps and Secrets travel by name only: items, modes, optional and
// the projected sources in order, never a value.
func TestSpecFromRevisionObjectSources(t *testing.T) {
	yes, mode, itemMode, exp := true, int32(0o400), int32(0o600), int64(7200)
	rev := &v1.Revision{
		Metadata: metav1.ObjectMeta{Name: "cfg-00001", Namespace: "ns"},
		Spec: v1.RevisionSpec{
			ServiceAccountName: "robot",
			Containers: []v1.Container{{Name: "user-container", Image: "i",
				EnvFrom: []v1.EnvFromSource{
					{ConfigMapRef: &v1.EnvSourceRef{Name: "cm"}},
					{Prefix: "S_", SecretRef: &v1.EnvSourceRef{Name: "sec", Optional: &yes}},
				},
				Env: []v1.EnvVar{
					{Name: "A", Value: "1"},
					{Name: "B", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.KeySelector{Name: "cm", Key: "b"}}},
					{Name: "A", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.KeySelector{Name: "sec", Key: "a", Optional: &yes}}},
					{Name: "B", Value: "2"},
				},
				VolumeMounts: []v1.VolumeMount{{Name: "cmv", MountPath: "/c", ReadOnly: true}, {Name: "pv", MountPath: "/p/token", SubPath: "token", ReadOnly: true}},
			}},
			Volumes: []v1.Volume{
				{Name: "cmv", ConfigMap: &v1.ConfigMapVolumeSource{Name: "cm", DefaultMode: &mode, Optional: &yes,
					Items: []v1.KeyToPath{{Key: "k", Path: "dir/k", Mode: &itemMode}}}},
				{Name: "pv", Projected: &v1.ProjectedVolumeSource{DefaultMode: &mode, Sources: []v1.VolumeProjection{
					{ConfigMap: &v1.ProjectionSource{Name: "cm"}},
					{Secret: &v1.ProjectionSource{Name: "sec", Items: []v1.KeyToPath{{Key: "x", Path: "y"}}}},
					{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Audience: "api", ExpirationSeconds: &exp, Path: "token"}},
				}}},
			},
		},
	}
	s, err := SpecFromRevision(rev)
	if err != nil {
		t.Fatal(err)
	}
	// The last declaration of a name wins, whether literal or a reference;
	// the order is the first declaration's.
	if !reflect.DeepEqual(s.EnvOrder, []string{"A", "B"}) || !reflect.DeepEqual(s.Env, map[string]string{"B": "2"}) ||
		!reflect.DeepEqual(s.EnvRefs, map[string]cluster.EnvKeyRef{"A": {Secret: "sec", Key: "a", Optional: true}}) {
		t.Errorf("env %v order %v refs %v", s.Env, s.EnvOrder, s.EnvRefs)
	}
	wantFrom := []cluster.EnvFromSource{{ConfigMap: "cm"}, {Prefix: "S_", Secret: "sec", Optional: true}}
	if !reflect.DeepEqual(s.EnvFrom, wantFrom) {
		t.Errorf("envFrom %+v", s.EnvFrom)
	}
	wantVols := []cluster.Volume{
		{Name: "cmv", ConfigMap: &cluster.KeysVolume{Name: "cm", DefaultMode: &mode, Optional: true,
			Items: []cluster.KeyToPath{{Key: "k", Path: "dir/k", Mode: &itemMode}}}},
		{Name: "pv", Projected: &cluster.ProjectedVolume{DefaultMode: &mode, Sources: []cluster.Projection{
			{ConfigMap: &cluster.KeysVolume{Name: "cm"}},
			{Secret: &cluster.KeysVolume{Name: "sec", Items: []cluster.KeyToPath{{Key: "x", Path: "y"}}}},
			{ServiceAccountToken: &cluster.TokenProjection{Audience: "api", ExpirationSeconds: 7200, Path: "token"}},
		}}},
	}
	if !reflect.DeepEqual(s.Volumes, wantVols) {
		t.Errorf("volumes %+v", s.Volumes)
	}
	wantMounts := []cluster.VolumeMount{{Volume: "cmv", Path: "/c", ReadOnly: true}, {Volume: "pv", Path: "/p/token", SubPath: "token", ReadOnly: true}}
	if !reflect.DeepEqual(s.Mounts, wantMounts) || s.ServiceAccountName != "robot" {
		t.Errorf("mounts %+v, service account %q", s.Mounts, s.ServiceAccountName)
	}
}
