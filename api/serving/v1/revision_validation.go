package v1

import (
	"context"
	"fmt"
	"strings"
)

// Limits Knative enforces on a revision.
const (
	MaxContainerConcurrency = 1000
	MaxTimeoutSeconds       = 600
)

// reservedPorts are used by the queue-proxy next to the user container.
var reservedPorts = map[int32]bool{8012: true, 8013: true, 8022: true, 9090: true, 9091: true}

// reservedEnv are set by the platform on every instance.
var reservedEnv = map[string]bool{"PORT": true, "K_SERVICE": true, "K_CONFIGURATION": true, "K_REVISION": true}

// Validate checks a Revision. Revisions are written by the controller from a
// validated template, but users may also post them through the API.
func (r *Revision) Validate(ctx context.Context) *FieldError {
	errs := validateTypeMeta(r.APIVersion, r.Kind, KindRevision)
	errs = errs.Also(validateObjectMeta(&r.Metadata).Also(validateScaleAnnotations(r.Metadata.Annotations)).ViaField("metadata"))
	return errs.Also(r.Spec.Validate(ctx).ViaField("spec"))
}

// validate checks a revision template; parent is the name of the owning
// Service or Configuration, which a set template name must start with.
func (t *RevisionTemplateSpec) validate(ctx context.Context, parent string) *FieldError {
	var errs *FieldError
	if n := t.Metadata.Name; n != "" {
		errs = errs.Also(validateDNS1035Label(n, "metadata.name"))
		if parent != "" && !strings.HasPrefix(n, parent+"-") {
			errs = errs.Also(ErrInvalidValue(n, "metadata.name", fmt.Sprintf("must have prefix %q", parent+"-")))
		}
	}
	if t.Metadata.Namespace != "" {
		errs = errs.Also(ErrDisallowedFields("metadata.namespace"))
	}
	errs = errs.Also(validateMapKeys(t.Metadata.Labels, "labels").ViaField("metadata"))
	errs = errs.Also(validateMapKeys(t.Metadata.Annotations, "annotations").ViaField("metadata"))
	errs = errs.Also(validateScaleAnnotations(t.Metadata.Annotations).ViaField("metadata"))
	return errs.Also(t.Spec.Validate(ctx).ViaField("spec"))
}

// Validate checks the revision spec; paths are relative to spec.
func (s *RevisionSpec) Validate(ctx context.Context) *FieldError {
	var errs *FieldError
	switch len(s.Containers) {
	case 0:
		errs = errs.Also(ErrMissingField("containers"))
	case 1:
		errs = errs.Also(validateContainer(&s.Containers[0], s.Volumes).ViaFieldIndex("containers", 0))
	default:
		// kiln runs one container per instance; sidecars are not supported.
		errs = errs.Also(ErrGeneric(fmt.Sprintf("expected exactly one container, got %d", len(s.Containers)), "containers"))
		for i := range s.Containers {
			errs = errs.Also(validateContainer(&s.Containers[i], s.Volumes).ViaFieldIndex("containers", i))
		}
	}
	if len(s.InitContainers) > 0 {
		errs = errs.Also(ErrDisallowedFields("initContainers"))
	}
	volNames := map[string]bool{}
	for i, v := range s.Volumes {
		if v.Name == "" {
			errs = errs.Also(ErrMissingField("name").ViaFieldIndex("volumes", i))
		} else if volNames[v.Name] {
			errs = errs.Also(ErrInvalidValue(v.Name, "name", "duplicate volume name").ViaFieldIndex("volumes", i))
		}
		volNames[v.Name] = true
		n := 0
		for _, set := range []bool{v.EmptyDir != nil, v.Secret != nil, v.ConfigMap != nil, v.PersistentVolumeClaim != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("expected exactly one volume source, got %d", n)).ViaFieldIndex("volumes", i))
		}
	}
	if cc := s.ContainerConcurrency; cc != nil && (*cc < 0 || *cc > MaxContainerConcurrency) {
		errs = errs.Also(ErrOutOfBoundsValue(*cc, 0, MaxContainerConcurrency, "containerConcurrency"))
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"timeoutSeconds", s.TimeoutSeconds}, {"responseStartTimeoutSeconds", s.ResponseStartTimeoutSeconds}, {"idleTimeoutSeconds", s.IdleTimeoutSeconds}} {
		if f.v == nil {
			continue
		}
		lo := int64(1)
		if f.name != "timeoutSeconds" {
			lo = 0 // 0 disables these two timeouts
		}
		if *f.v < lo || *f.v > MaxTimeoutSeconds {
			errs = errs.Also(ErrOutOfBoundsValue(*f.v, lo, MaxTimeoutSeconds, f.name))
		}
	}
	return errs
}

// validateContainer checks one container; paths are relative to it.
func validateContainer(c *Container, vols []Volume) *FieldError {
	var errs *FieldError
	if c.Name != "" {
		errs = errs.Also(validateDNS1123Label(c.Name, "name"))
	}
	if strings.TrimSpace(c.Image) == "" {
		errs = errs.Also(ErrMissingField("image"))
	}
	switch len(c.Ports) {
	case 0:
	case 1:
		errs = errs.Also(validatePort(c.Ports[0]).ViaFieldIndex("ports", 0))
	default:
		errs = errs.Also(ErrGeneric("more than one container port is set", "ports"))
	}
	seen := map[string]bool{}
	for i, e := range c.Env {
		switch {
		case e.Name == "":
			errs = errs.Also(ErrMissingField("name").ViaFieldIndex("env", i))
		case reservedEnv[e.Name]:
			errs = errs.Also(ErrInvalidValue(e.Name, "name", fmt.Sprintf("%q is a reserved environment variable", e.Name)).ViaFieldIndex("env", i))
		case seen[e.Name]:
			errs = errs.Also(ErrInvalidValue(e.Name, "name", "duplicate environment variable").ViaFieldIndex("env", i))
		}
		seen[e.Name] = true
		if e.ValueFrom != nil {
			if e.Value != "" {
				errs = errs.Also(ErrMultipleOneOf("value", "valueFrom").ViaFieldIndex("env", i))
			}
			if (e.ValueFrom.SecretKeyRef == nil) == (e.ValueFrom.ConfigMapKeyRef == nil) {
				errs = errs.Also(ErrGeneric("expected exactly one of secretKeyRef, configMapKeyRef", "valueFrom").ViaFieldIndex("env", i))
			}
		}
	}
	volNames := map[string]bool{}
	for _, v := range vols {
		volNames[v.Name] = true
	}
	for i, m := range c.VolumeMounts {
		if !volNames[m.Name] {
			errs = errs.Also(ErrInvalidValue(m.Name, "name", "volume mount should refer to a volume").ViaFieldIndex("volumeMounts", i))
		}
		if !strings.HasPrefix(m.MountPath, "/") {
			errs = errs.Also(ErrInvalidValue(m.MountPath, "mountPath", "must be an absolute path").ViaFieldIndex("volumeMounts", i))
		}
	}
	errs = errs.Also(validateProbe(c.ReadinessProbe).ViaField("readinessProbe"))
	errs = errs.Also(validateProbe(c.LivenessProbe).ViaField("livenessProbe"))
	if p := c.ImagePullPolicy; p != "" && p != "Always" && p != "IfNotPresent" && p != "Never" {
		errs = errs.Also(ErrInvalidValue(p, "imagePullPolicy", "must be Always, IfNotPresent or Never"))
	}
	return errs
}

func validatePort(p ContainerPort) *FieldError {
	var errs *FieldError
	switch {
	case p.ContainerPort < 1 || p.ContainerPort > 65535:
		// An absent ports list means "8080"; a present entry must say which.
		errs = errs.Also(ErrOutOfBoundsValue(p.ContainerPort, 1, 65535, "containerPort"))
	case reservedPorts[p.ContainerPort]:
		errs = errs.Also(ErrInvalidValue(p.ContainerPort, "containerPort", fmt.Sprintf("port %d is reserved", p.ContainerPort)))
	}
	if p.Protocol != "" && p.Protocol != "TCP" {
		errs = errs.Also(ErrInvalidValue(p.Protocol, "protocol", "only TCP is supported"))
	}
	if p.Name != "" && p.Name != "http1" && p.Name != "h2c" {
		errs = errs.Also(ErrInvalidValue(p.Name, "name", `must be "http1" or "h2c"`))
	}
	return errs
}

func validateProbe(p *Probe) *FieldError {
	if p == nil {
		return nil
	}
	var errs *FieldError
	n := 0
	for _, set := range []bool{p.HTTPGet != nil, p.TCPSocket != nil, p.Exec != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = errs.Also(ErrMultipleOneOf("httpGet", "tcpSocket", "exec"))
	}
	for _, f := range []struct {
		name string
		v    int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"periodSeconds", p.PeriodSeconds}, {"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold}} {
		if f.v < 0 {
			errs = errs.Also(ErrOutOfBoundsValue(f.v, 0, "+inf", f.name))
		}
	}
	return errs
}

// validateTypeMeta checks apiVersion/kind when set; SetDefaults fills them,
// so only a wrong value is an error.
func validateTypeMeta(apiVersion, kind, want string) *FieldError {
	var errs *FieldError
	if apiVersion != "" && apiVersion != APIVersion {
		errs = errs.Also(ErrInvalidValue(apiVersion, "apiVersion", "must be "+APIVersion))
	}
	if kind != "" && kind != want {
		errs = errs.Also(ErrInvalidValue(kind, "kind", "must be "+want))
	}
	return errs
}
