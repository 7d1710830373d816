package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// envSpec is one container's declared environment.
type envSpec struct {
	env   map[string]string
	order []string
	refs  map[string]cluster.EnvKeyRef
	from  []cluster.EnvFromSource
}

func servingEnvSpec(s cluster.InstanceSpec) envSpec {
	return envSpec{env: s.Env, order: s.EnvOrder, refs: s.EnvRefs, from: s.EnvFrom}
}

func containerEnvSpec(c cluster.ContainerSpec) envSpec {
	return envSpec{env: c.Env, order: c.EnvOrder, refs: c.EnvRefs, from: c.EnvFrom}
}

// objectCache reads each ConfigMap and Secret once per instance start, so
// every container of the instance sees the same version of it.
type objectCache struct {
	src  objectSource
	ns   string
	data map[string]map[string][]byte
	errs map[string]error
}

func newObjectCache(src objectSource, ns string) *objectCache {
	return &objectCache{src: src, ns: ns, data: map[string]map[string][]byte{}, errs: map[string]error{}}
}

// get returns the data of the ConfigMap (secret false) or Secret name.
// Errors: errdefs.ErrNotFound; errConfig when no source is configured.
func (c *objectCache) get(ctx context.Context, secret bool, name string) (map[string][]byte, error) {
	k := fmt.Sprint(secret, "/", name)
	if d, ok := c.data[k]; ok {
		return d, nil
	}
	if err, ok := c.errs[k]; ok {
		return nil, err
	}
	var d map[string][]byte
	var err error
	switch {
	case c.src == nil:
		err = errors.New("the agent reads no ConfigMaps or Secrets")
	case secret:
		d, err = c.src.Secret(ctx, c.ns, name)
	default:
		d, err = c.src.ConfigMap(ctx, c.ns, name)
	}
	if err != nil {
		c.errs[k] = err
		return nil, err
	}
	c.data[k] = d
	return d, nil
}

// resolveEnv is a container's environment as a kubelet assembles it:
// every envFrom import in order (keys sorted within one object; a key that
// is no valid variable name skipped), then the declared variables in
// order, literal or read from a ConfigMap or Secret key, each overriding
// an earlier one of its name. A missing object or key that is not
// optional fails with errConfig and the kubelet's message.
func resolveEnv(ctx context.Context, objs *objectCache, s envSpec) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, f := range s.from {
		data, err := objs.get(ctx, f.Secret != "", f.ConfigMap+f.Secret)
		if errdefs.IsNotFound(err) && f.Optional {
			continue
		}
		if err != nil {
			return nil, asConfigError(err)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			name := f.Prefix + k
			if len(validation.IsEnvVarName(name)) > 0 {
				continue
			}
			set(name, string(data[k]))
		}
	}
	for _, name := range s.order {
		if v, ok := s.env[name]; ok {
			set(name, v)
			continue
		}
		r, ok := s.refs[name]
		if !ok {
			continue
		}
		kind, obj := "ConfigMap", r.ConfigMap
		if r.Secret != "" {
			kind, obj = "Secret", r.Secret
		}
		data, err := objs.get(ctx, r.Secret != "", obj)
		if errdefs.IsNotFound(err) && r.Optional {
			continue
		}
		if err != nil {
			return nil, asConfigError(err)
		}
		v, ok := data[r.Key]
		if !ok {
			if r.Optional {
				continue
			}
			return nil, asConfigError(fmt.Errorf("couldn't find key %s in %s %s/%s", r.Key, kind, objs.ns, obj))
		}
		set(name, string(v))
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	// Literal variables outside order (records without one) follow,
	// sorted, as they always did.
	declared := map[string]string{}
	for k, v := range s.env {
		if !slices.Contains(s.order, k) {
			declared[k] = v
		}
	}
	return appendUserEnv(out, declared, nil), nil
}

// resolveEnvs resolves the environment of every container of the instance
// into w.env, reading each ConfigMap and Secret once through objs.
func (w *worker) resolveEnvs(ctx context.Context, objs *objectCache) error {
	spec := w.p.Spec
	env := map[string][]string{}
	var err error
	if env[spec.ContainerName], err = resolveEnv(ctx, objs, servingEnvSpec(spec)); err != nil {
		return err
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Sidecars) {
		if env[c.Name], err = resolveEnv(ctx, objs, containerEnvSpec(c)); err != nil {
			return fmt.Errorf("container %q: %w", c.Name, err)
		}
	}
	w.env = env
	return nil
}

// configFailure is the record's reason for err: CreateContainerConfigError
// for errConfig, otherwise fallback.
func configFailure(err error, fallback string) string {
	if errors.Is(err, errConfig) {
		return reasonConfigError
	}
	return fallback
}
