package v1

import (
	"context"
	"strconv"

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

// SetDefaults fills the revision spec defaults: container names,
// containerConcurrency 0 (unlimited) and timeoutSeconds 300.
//
// Readiness probes are left nil: a nil probe means "TCP connect to the user
// port" (Knative's default tcpSocket probe) and the agent applies it, so the
// stored spec does not grow a probe the user never wrote.
func (s *RevisionSpec) SetDefaults(context.Context) {
	if s.ContainerConcurrency == nil {
		v := DefaultContainerConcurrency
		s.ContainerConcurrency = &v
	}
	if s.TimeoutSeconds == nil {
		v := DefaultTimeoutSeconds
		s.TimeoutSeconds = &v
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if c.Name != "" {
			continue
		}
		if len(s.Containers) == 1 {
			c.Name = DefaultContainerName
		} else {
			c.Name = DefaultContainerName + "-" + strconv.Itoa(i)
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
