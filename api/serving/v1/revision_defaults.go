package v1

import (
	"context"
	"strconv"
	"strings"

	"github.com/kiln-serving/kiln/api/config"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// Defaults Knative applies to every revision (config-defaults).
const (
	DefaultContainerName              = "user-container"
	DefaultTimeoutSeconds       int64 = 300
	DefaultContainerConcurrency       = int64(0)
	// DefaultUserPort is what the agent gives a container that declares no
	// port. Ports are deliberately not defaulted into the spec so a
	// round-tripped manifest stays as the user wrote it.
	DefaultUserPort int32 = 8080
)

// SetDefaults fills apiVersion/kind and the spec defaults.
func (r *Revision) SetDefaults(ctx context.Context) {
	setTypeMeta(&r.TypeMeta, KindRevision)
	r.Spec.SetDefaults(ctx)
}

// SetDefaults fills the revision spec defaults from config-defaults in ctx
// (config.FromContextOrDefaults) as Knative's webhook does, so a stored
// object shows what Knative's would: containerConcurrency (0, unlimited),
// timeoutSeconds (300, also for an explicit 0), the response-start and idle
// timeouts when the cluster sets them, enableServiceLinks
// (enable-service-links, false), container names, ports' protocol (TCP,
// the CRD schema's default), and a readiness probe on the serving
// container: tcpSocket on the user port (port 0) with successThreshold 1
// when the user wrote none, the missing parts when the user wrote one.
// Applying it again changes nothing.
func (s *RevisionSpec) SetDefaults(ctx context.Context) {
	d := config.FromContextOrDefaults(ctx).Defaults()
	if s.ContainerConcurrency == nil {
		v := d.ContainerConcurrency
		s.ContainerConcurrency = &v
	}
	if s.TimeoutSeconds == nil || *s.TimeoutSeconds == 0 {
		v := d.RevisionTimeoutSeconds
		s.TimeoutSeconds = &v
	}
	if s.ResponseStartTimeoutSeconds == nil && d.RevisionResponseStartTimeoutSeconds > 0 {
		v := d.RevisionResponseStartTimeoutSeconds
		s.ResponseStartTimeoutSeconds = &v
	}
	if s.IdleTimeoutSeconds == nil && d.RevisionIdleTimeoutSeconds > 0 {
		v := d.RevisionIdleTimeoutSeconds
		s.IdleTimeoutSeconds = &v
	}
	if s.EnableServiceLinks == nil {
		v := d.EnableServiceLinks
		s.EnableServiceLinks = &v
	}
	base := DefaultContainerName
	if t := d.ContainerNameTemplate; t != "" && !strings.Contains(t, "{{") {
		base = t
	}
	// As Knative: a mount of anything but scratch or claim space (secret,
	// configMap, projected) is read-only, whether the user said so or not.
	writable := map[string]bool{}
	for _, v := range s.Volumes {
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil {
			writable[v.Name] = true
		}
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		for j := range c.VolumeMounts {
			if !writable[c.VolumeMounts[j].Name] {
				c.VolumeMounts[j].ReadOnly = true
			}
		}
		// Only the serving container is probed; sidecars may not be.
		if c.ReadinessProbe == nil && (len(s.Containers) == 1 || len(c.Ports) > 0) {
			c.ReadinessProbe = &Probe{}
		}
		defaultProbe(c.ReadinessProbe)
		defaultPorts(c.Ports)
		if c.Name != "" {
			continue
		}
		if len(s.Containers) == 1 {
			c.Name = base
		} else {
			c.Name = base + "-" + strconv.Itoa(i)
		}
	}
	for i := range s.InitContainers {
		defaultPorts(s.InitContainers[i].Ports)
	}
}

// defaultPorts gives ports without a protocol TCP, as the CRD's schema
// defaults it.
func defaultPorts(ps []ContainerPort) {
	for i := range ps {
		if ps[i].Protocol == "" {
			ps[i].Protocol = "TCP"
		}
	}
}

// defaultProbe completes a readiness probe as Knative does: a probe
// without a handler probes TCP, successThreshold defaults to 1, and with a
// period set the Kubernetes failure and timeout defaults apply. A handler's
// missing port is 0 (the user port), which Kubernetes' types always write.
func defaultProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.HTTPGet == nil && p.TCPSocket == nil && p.Exec == nil && p.GRPC == nil {
		p.TCPSocket = &TCPSocketAction{}
	}
	if p.TCPSocket != nil && p.TCPSocket.Port == nil {
		p.TCPSocket.Port = FromInt(0)
	}
	if p.HTTPGet != nil && p.HTTPGet.Port == nil {
		p.HTTPGet.Port = FromInt(0)
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.PeriodSeconds != 0 {
		if p.FailureThreshold == 0 {
			p.FailureThreshold = 3
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = 1
		}
	}
}

// setTypeMeta fills apiVersion and kind when empty; a wrong value is kept
// so Validate can report it.
func setTypeMeta(tm *metav1.TypeMeta, kind string) {
	if tm.APIVersion == "" {
		tm.APIVersion = APIVersion
	}
	if tm.Kind == "" {
		tm.Kind = kind
	}
}
