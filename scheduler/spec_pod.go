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
// init containers and the volumes kiln provides on a VM (emptyDir,
// persistent volume claims, and secret, configMap and projected volumes,
// which carry only the objects' names: the agent reads them).
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
		case v.Secret != nil:
			s := v.Secret
			cv = cluster.Volume{Name: v.Name, Secret: keysVolume(s.SecretName, s.Items, s.DefaultMode, s.Optional)}
		case v.ConfigMap != nil:
			c := v.ConfigMap
			cv = cluster.Volume{Name: v.Name, ConfigMap: keysVolume(c.Name, c.Items, c.DefaultMode, c.Optional)}
		case v.Projected != nil:
			pv := &cluster.ProjectedVolume{DefaultMode: v.Projected.DefaultMode}
			for _, src := range v.Projected.Sources {
				var p cluster.Projection
				switch {
				case src.Secret != nil:
					p.Secret = keysVolume(src.Secret.Name, src.Secret.Items, nil, src.Secret.Optional)
				case src.ConfigMap != nil:
					p.ConfigMap = keysVolume(src.ConfigMap.Name, src.ConfigMap.Items, nil, src.ConfigMap.Optional)
				case src.ServiceAccountToken != nil:
					t := src.ServiceAccountToken
					p.ServiceAccountToken = &cluster.TokenProjection{Audience: t.Audience, Path: t.Path}
					if t.ExpirationSeconds != nil {
						p.ServiceAccountToken.ExpirationSeconds = *t.ExpirationSeconds
					}
				}
				pv.Sources = append(pv.Sources, p)
			}
			cv = cluster.Volume{Name: v.Name, Projected: pv}
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
		cs.Env, cs.EnvOrder, cs.EnvRefs, cs.EnvFrom = envOf(c)
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
	spec.ServiceAccountName = rs.ServiceAccountName
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

// envOf is c's environment: literal values and references to ConfigMap
// and Secret keys by name in declared order (like Kubernetes, the last of
// duplicate names wins), and the envFrom imports that come before them.
// Values of references are the agent's to read.
func envOf(c v1.Container) (env map[string]string, order []string, refs map[string]cluster.EnvKeyRef, from []cluster.EnvFromSource) {
	seen := map[string]bool{}
	for _, e := range c.Env {
		var ref *cluster.EnvKeyRef
		if vf := e.ValueFrom; vf != nil {
			var k *v1.KeySelector
			ref = &cluster.EnvKeyRef{}
			switch {
			case vf.ConfigMapKeyRef != nil:
				k = vf.ConfigMapKeyRef
				ref.ConfigMap = k.Name
			case vf.SecretKeyRef != nil:
				k = vf.SecretKeyRef
				ref.Secret = k.Name
			default:
				continue // a source kiln does not know (refused by validation)
			}
			ref.Key, ref.Optional = k.Key, k.Optional != nil && *k.Optional
		}
		if !seen[e.Name] {
			seen[e.Name] = true
			order = append(order, e.Name)
		}
		delete(env, e.Name)
		delete(refs, e.Name)
		if ref != nil {
			if refs == nil {
				refs = map[string]cluster.EnvKeyRef{}
			}
			refs[e.Name] = *ref
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		env[e.Name] = e.Value
	}
	for _, e := range c.EnvFrom {
		f := cluster.EnvFromSource{Prefix: e.Prefix}
		var r *v1.EnvSourceRef
		switch {
		case e.ConfigMapRef != nil:
			r = e.ConfigMapRef
			f.ConfigMap = r.Name
		case e.SecretRef != nil:
			r = e.SecretRef
			f.Secret = r.Name
		default:
			continue
		}
		f.Optional = r.Optional != nil && *r.Optional
		from = append(from, f)
	}
	return env, order, refs, from
}

// keysVolume is a secret or configMap volume (or projection) by reference.
func keysVolume(name string, items []v1.KeyToPath, mode *int32, optional *bool) *cluster.KeysVolume {
	kv := &cluster.KeysVolume{Name: name, DefaultMode: mode, Optional: optional != nil && *optional}
	for _, it := range items {
		kv.Items = append(kv.Items, cluster.KeyToPath{Key: it.Key, Path: it.Path, Mode: it.Mode})
	}
	return kv
}
