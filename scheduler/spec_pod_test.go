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
		Mounts: []cluster.VolumeMount{{Volume: "scratch", Path: "/scratch"}}}}
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
	}
	if !reflect.DeepEqual(s.Volumes, wantVols) {
		t.Errorf("volumes %+v", s.Volumes)
	}

	bare := &v1.Revision{Metadata: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: v1.RevisionSpec{Containers: []v1.Container{{Name: "user-container", Image: "i"}}}}
	if s, _ := SpecFromRevision(bare); s.Sidecars != nil || s.InitContainers != nil || s.Volumes != nil || s.Mounts != nil || s.ContainerName != "user-container" {
		t.Errorf("a one-container revision grew extras: %+v", s)
	}
}
