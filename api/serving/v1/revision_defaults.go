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
// (config.FromContextOrDefaults): containerConcurrency (0, unlimited),
// timeoutSeconds (300), the response-start and idle timeouts when the
// cluster sets them, container names, and the missing parts of a readiness
// probe the user did write.
//
// A nil readiness probe stays nil: it means "TCP connect to the user port"
// (Knative's default tcpSocket probe) and the agent applies it, so the
// stored spec does not grow a probe the user never wrote.
func (s *RevisionSpec) SetDefaults(ctx context.Context) {
	d := config.FromContextOrDefaults(ctx).Defaults()
	if s.ContainerConcurrency == nil {
		v := d.ContainerConcurrency
		s.ContainerConcurrency = &v
	}
	if s.TimeoutSeconds == nil {
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
	base := DefaultContainerName
	if t := d.ContainerNameTemplate; t != "" && !strings.Contains(t, "{{") {
		base = t
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		defaultProbe(c.ReadinessProbe)
		if c.Name != "" {
			continue
		}
		if len(s.Containers) == 1 {
			c.Name = base
		} else {
			c.Name = base + "-" + strconv.Itoa(i)
		}
	}
}

// defaultProbe completes a user-written readiness probe as Knative does: a
// probe without a handler probes TCP, successThreshold defaults to 1, and
// with a period set the Kubernetes failure and timeout defaults apply.
func defaultProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.HTTPGet == nil && p.TCPSocket == nil && p.Exec == nil && p.GRPC == nil {
		p.TCPSocket = &TCPSocketAction{}
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
