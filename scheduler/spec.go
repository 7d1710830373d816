package scheduler

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// SpecFromRevision builds what an agent needs to run one instance of rev.
// The container with a port (or the only one) serves; the others become
// sidecars (see addPodExtras). ConfigMaps and Secrets are carried by name
// only (env sources, volumes): the agent reads their values.
// Errors: errdefs.ErrInvalidArgument when rev has no container or an
// unparsable resource quantity.
func SpecFromRevision(rev *v1.Revision) (cluster.InstanceSpec, error) {
	m := rev.Metadata
	if len(rev.Spec.Containers) == 0 {
		return cluster.InstanceSpec{}, fmt.Errorf("revision %s/%s: spec.containers is empty: %w", m.Namespace, m.Name, errdefs.ErrInvalidArgument)
	}
	serving := servingIndex(rev.Spec.Containers)
	c := rev.Spec.Containers[serving]
	spec := cluster.InstanceSpec{
		Namespace:      m.Namespace,
		Service:        m.Labels[v1.ServiceLabelKey],
		Configuration:  m.Labels[v1.ConfigurationLabelKey],
		Revision:       m.Name,
		Image:          c.Image,
		Command:        c.Command,
		Args:           c.Args,
		WorkingDir:     c.WorkingDir,
		Port:           v1.DefaultUserPort,
		TimeoutSeconds: v1.DefaultTimeoutSeconds,
	}
	spec.Env, spec.EnvOrder, spec.EnvRefs, spec.EnvFrom = envOf(c)
	if len(c.Ports) > 0 {
		if c.Ports[0].ContainerPort > 0 {
			spec.Port = c.Ports[0].ContainerPort
		}
		spec.PortName = c.Ports[0].Name
	}
	if cc := rev.Spec.ContainerConcurrency; cc != nil {
		spec.ContainerConcurrency = *cc
	}
	if ts := rev.Spec.TimeoutSeconds; ts != nil && *ts > 0 {
		spec.TimeoutSeconds = *ts
	}
	if t := rev.Spec.ResponseStartTimeoutSeconds; t != nil && *t > 0 {
		spec.ResponseStartTimeoutSeconds = *t
	}
	if t := rev.Spec.IdleTimeoutSeconds; t != nil && *t > 0 {
		spec.IdleTimeoutSeconds = *t
	}
	spec.Readiness = probeOf(c.ReadinessProbe, spec.Port)
	spec.Liveness = probeOf(c.LivenessProbe, spec.Port)
	if r := spec.Readiness; r != nil && r.HTTPGet != nil {
		// Agents that predate Readiness still probe the right path.
		spec.ReadinessPath = r.HTTPGet.Path
	}
	var err error
	if spec.MilliCPU, err = request(c.Resources, "cpu", 1000); err != nil {
		return cluster.InstanceSpec{}, fmt.Errorf("revision %s/%s: %w", m.Namespace, m.Name, err)
	}
	if spec.MemoryMiB, err = request(c.Resources, "memory", 1.0/(1<<20)); err != nil {
		return cluster.InstanceSpec{}, fmt.Errorf("revision %s/%s: %w", m.Namespace, m.Name, err)
	}
	if spec.LimitMilliCPU, spec.LimitMemoryMiB, err = limits(c.Resources); err != nil {
		return cluster.InstanceSpec{}, fmt.Errorf("revision %s/%s: %w", m.Namespace, m.Name, err)
	}
	spec.Security = securityOf(rev.Spec.SecurityContext, c.SecurityContext)
	if err := addPodExtras(&spec, rev, serving); err != nil {
		return cluster.InstanceSpec{}, fmt.Errorf("revision %s/%s: %w", m.Namespace, m.Name, err)
	}
	return spec, nil
}

// probeOf is what an agent needs of one probe; nil for none. A probe port
// equal to the serving port (or unset, or named: validation only admits
// the serving port's name) becomes 0, "the serving port", since the agent
// may move the serving port (host network).
func probeOf(p *v1.Probe, servingPort int32) *cluster.Probe {
	if p == nil {
		return nil
	}
	out := &cluster.Probe{
		InitialDelaySeconds: p.InitialDelaySeconds,
		TimeoutSeconds:      p.TimeoutSeconds,
		PeriodSeconds:       p.PeriodSeconds,
		SuccessThreshold:    p.SuccessThreshold,
		FailureThreshold:    p.FailureThreshold,
	}
	port := func(v *v1.IntOrString) int32 {
		if v == nil || v.IsString || v.IntVal == servingPort {
			return 0
		}
		return v.IntVal
	}
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		out.HTTPGet = &cluster.HTTPGetProbe{Path: g.Path, Scheme: strings.ToUpper(g.Scheme)}
		if out.HTTPGet.Path == "" {
			out.HTTPGet.Path = "/"
		} else if !strings.HasPrefix(out.HTTPGet.Path, "/") {
			out.HTTPGet.Path = "/" + out.HTTPGet.Path
		}
		for _, h := range g.HTTPHeaders {
			out.HTTPGet.Headers = append(out.HTTPGet.Headers, cluster.HTTPHeader{Name: h.Name, Value: h.Value})
		}
		out.Port = port(g.Port)
	case p.Exec != nil:
		out.Exec = append([]string(nil), p.Exec.Command...)
	case p.GRPC != nil:
		out.GRPC = &cluster.GRPCProbe{}
		if p.GRPC.Service != nil {
			out.GRPC.Service = *p.GRPC.Service
		}
		if p.GRPC.Port != servingPort {
			out.Port = p.GRPC.Port
		}
	default:
		out.TCPSocket = true
		if p.TCPSocket != nil {
			out.Port = port(p.TCPSocket.Port)
		}
	}
	return out
}

// request returns the resource's request (falling back to its limit, as
// Kubernetes defaults requests from limits) times unit, rounded up; 0 when
// neither is set.
func request(r v1.ResourceRequirements, name string, unit float64) (int64, error) {
	q, ok := r.Requests[name]
	field := "resources.requests." + name
	if !ok {
		q, ok = r.Limits[name]
		field = "resources.limits." + name
	}
	if !ok {
		return 0, nil
	}
	v, err := ParseQuantity(q)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	v.Mul(v, new(big.Rat).SetFloat64(unit))
	return ceil(v), nil
}

// limits returns the cpu (millicores) and memory (MiB) limits, rounded
// up; 0 when unset. Unlike requests they do not fall back: a container
// without a limit gets no cgroup ceiling, as in Kubernetes.
func limits(r v1.ResourceRequirements) (milliCPU, memoryMiB int64, err error) {
	lim := v1.ResourceRequirements{Limits: r.Limits}
	if _, ok := r.Limits["cpu"]; ok {
		if milliCPU, err = request(lim, "cpu", 1000); err != nil {
			return 0, 0, err
		}
	}
	if _, ok := r.Limits["memory"]; ok {
		if memoryMiB, err = request(lim, "memory", 1.0/(1<<20)); err != nil {
			return 0, 0, err
		}
	}
	return milliCPU, memoryMiB, nil
}

// securityOf folds the pod-level securityContext into a container's (the
// container's fields win, as in Kubernetes). nil when neither sets
// anything, so records of plain revisions stay as they were.
func securityOf(pod *v1.PodSecurityContext, c *v1.SecurityContext) *cluster.Security {
	var s cluster.Security
	seccomp := ""
	if pod != nil {
		s.RunAsUser, s.RunAsGroup = pod.RunAsUser, pod.RunAsGroup
		s.SupplementalGroups = pod.SupplementalGroups
		s.RunAsNonRoot = pod.RunAsNonRoot != nil && *pod.RunAsNonRoot
		if pod.SeccompProfile != nil {
			seccomp = pod.SeccompProfile.Type
		}
	}
	if c != nil {
		if c.RunAsUser != nil {
			s.RunAsUser = c.RunAsUser
		}
		if c.RunAsGroup != nil {
			s.RunAsGroup = c.RunAsGroup
		}
		if c.RunAsNonRoot != nil {
			s.RunAsNonRoot = *c.RunAsNonRoot
		}
		s.ReadOnlyRootFilesystem = c.ReadOnlyRootFilesystem != nil && *c.ReadOnlyRootFilesystem
		s.AllowPrivilegeEscalation = c.AllowPrivilegeEscalation != nil && *c.AllowPrivilegeEscalation
		if caps := c.Capabilities; caps != nil {
			for _, n := range caps.Add {
				s.CapAdd = append(s.CapAdd, strings.TrimPrefix(n, "CAP_"))
			}
			for _, n := range caps.Drop {
				s.CapDrop = append(s.CapDrop, strings.TrimPrefix(n, "CAP_"))
			}
		}
		if c.SeccompProfile != nil {
			seccomp = c.SeccompProfile.Type
		}
	}
	s.SeccompUnconfined = seccomp == v1.SeccompUnconfined
	if reflect.ValueOf(s).IsZero() {
		return nil
	}
	return &s
}

// quantitySuffixes are the Kubernetes quantity suffixes: binary (Ki..Ei),
// decimal SI (n..E).
var quantitySuffixes = map[string]*big.Rat{
	"Ki": pow(2, 10), "Mi": pow(2, 20), "Gi": pow(2, 30), "Ti": pow(2, 40), "Pi": pow(2, 50), "Ei": pow(2, 60),
	"n": big.NewRat(1, 1e9), "u": big.NewRat(1, 1e6), "m": big.NewRat(1, 1e3), "": big.NewRat(1, 1),
	"k": pow(10, 3), "M": pow(10, 6), "G": pow(10, 9), "T": pow(10, 12), "P": pow(10, 15), "E": pow(10, 18),
}

// ParseQuantity parses a Kubernetes resource quantity ("100m", "1", "0.5",
// "128Mi", "1Gi", "1e3") into an exact rational number of base units (cores,
// bytes). Errors: errdefs.ErrInvalidArgument.
func ParseQuantity(s string) (*big.Rat, error) {
	bad := func() (*big.Rat, error) {
		return nil, fmt.Errorf("quantity %q: must be a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ...): %w", s, errdefs.ErrInvalidArgument)
	}
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && strings.ContainsRune("KMGTPEiunmk", rune(s[i-1])) {
		i--
	}
	num, suffix := s[:i], s[i:]
	mult, ok := quantitySuffixes[suffix]
	if !ok {
		// "1E" is exa, but "1e3" is an exponent: let big.Rat try the whole string.
		num, mult = s, big.NewRat(1, 1)
	}
	if num == "" || strings.ContainsAny(num, "/") || strings.HasPrefix(num, "-") {
		return bad()
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad()
	}
	return v.Mul(v, mult), nil
}

func pow(base, exp int64) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
}

func ceil(v *big.Rat) int64 {
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}
