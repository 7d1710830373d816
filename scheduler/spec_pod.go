package scheduler

import (
	"fmt"
	"math/big"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// servingIndex is the container that receives requests: the one that
// declares a port (validation allows exactly one across containers when
// there are several), else the first.
func servingIndex(cs []v1.Container) int {
	for i, c := range cs {
		if len(c.Ports) > 0 {
			return i
		}
	}
	return 0
}

// addPodExtras copies what Knative's feature flags allow beyond one
// container: the serving container's name and mounts, the sidecars, the
// init containers and the volumes kiln can provide on a VM (emptyDir and
// persistent volume claims; secret and configMap volumes are not run yet,
// and mounts of them are skipped).
func addPodExtras(spec *cluster.InstanceSpec, rev *v1.Revision, serving int) error {
	rs := rev.Spec
	supported := map[string]bool{}
	for _, v := range rs.Volumes {
		var cv cluster.Volume
		switch {
		case v.EmptyDir != nil:
			cv = cluster.Volume{Name: v.Name, EmptyDir: &cluster.EmptyDirVolume{Medium: v.EmptyDir.Medium}}
			if q := v.EmptyDir.SizeLimit; q != "" {
				r, err := ParseQuantity(q)
				if err != nil {
					return fmt.Errorf("volumes %s: emptyDir.sizeLimit: %w", v.Name, err)
				}
				cv.EmptyDir.SizeLimitMiB = ceil(r.Mul(r, big.NewRat(1, 1<<20)))
			}
		case v.PersistentVolumeClaim != nil:
			cv = cluster.Volume{Name: v.Name, PersistentVolumeClaim: &cluster.ClaimVolume{
				ClaimName: v.PersistentVolumeClaim.ClaimName, ReadOnly: v.PersistentVolumeClaim.ReadOnly}}
		default:
			continue
		}
		supported[v.Name] = true
		spec.Volumes = append(spec.Volumes, cv)
	}
	mounts := func(c v1.Container) []cluster.VolumeMount {
		var out []cluster.VolumeMount
		for _, m := range c.VolumeMounts {
			if supported[m.Name] {
				out = append(out, cluster.VolumeMount{Volume: m.Name, Path: m.MountPath, ReadOnly: m.ReadOnly, SubPath: m.SubPath})
			}
		}
		return out
	}
	other := func(c v1.Container) (cluster.ContainerSpec, error) {
		cs := cluster.ContainerSpec{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args,
			WorkingDir: c.WorkingDir, Mounts: mounts(c)}
		cs.Env, cs.EnvOrder = envOf(c)
		var err error
		if cs.MilliCPU, err = request(c.Resources, "cpu", 1000); err != nil {
			return cs, fmt.Errorf("container %s: %w", c.Name, err)
		}
		if cs.MemoryMiB, err = request(c.Resources, "memory", 1.0/(1<<20)); err != nil {
			return cs, fmt.Errorf("container %s: %w", c.Name, err)
		}
		if cs.LimitMilliCPU, cs.LimitMemoryMiB, err = limits(c.Resources); err != nil {
			return cs, fmt.Errorf("container %s: %w", c.Name, err)
		}
		cs.Security = securityOf(rs.SecurityContext, c.SecurityContext)
		return cs, nil
	}
	sc := rs.Containers[serving]
	spec.ContainerName = sc.Name
	spec.Mounts = mounts(sc)
	for i, c := range rs.Containers {
		if i == serving {
			continue
		}
		cs, err := other(c)
		if err != nil {
			return err
		}
		spec.Sidecars = append(spec.Sidecars, cs)
	}
	for _, c := range rs.InitContainers {
		cs, err := other(c)
		if err != nil {
			return err
		}
		spec.InitContainers = append(spec.InitContainers, cs)
	}
	return nil
}

// envOf is c's literal environment in declared order; valueFrom entries
// are skipped and, like Kubernetes, the last of duplicate names wins.
func envOf(c v1.Container) (map[string]string, []string) {
	var env map[string]string
	var order []string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		if _, dup := env[e.Name]; !dup {
			order = append(order, e.Name)
		}
		env[e.Name] = e.Value
	}
	return env, order
}
