package v1

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-serving/kiln/api/config"
)

// Limits Knative enforces on a revision when config-defaults does not say
// otherwise (container-concurrency-max-limit, max-revision-timeout-seconds).
const (
	MaxContainerConcurrency = 1000
	MaxTimeoutSeconds       = 600
)

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
	errs := validateRevisionName(t.Metadata.Name, parent)
	if t.Metadata.Namespace != "" {
		errs = errs.Also(ErrDisallowedFields("metadata.namespace"))
	}
	errs = errs.Also(validateMapKeys(t.Metadata.Labels, "labels").ViaField("metadata"))
	errs = errs.Also(validateMapKeys(t.Metadata.Annotations, "annotations").ViaField("metadata"))
	errs = errs.Also(validateScaleAnnotations(t.Metadata.Annotations).ViaField("metadata"))
	return errs.Also(t.Spec.Validate(ctx).ViaField("spec"))
}

// validateRevisionName checks a user-chosen ("bring your own") revision
// name: a DNS-1035 label that starts with "<parent>-", as Knative requires.
func validateRevisionName(name, parent string) *FieldError {
	if name == "" {
		return nil
	}
	if fe := validateDNS1035Label(name, "metadata.name"); fe != nil {
		return fe
	}
	if parent != "" && !strings.HasPrefix(name, parent+"-") {
		return ErrInvalidValue(fmt.Sprintf("%q must have prefix %q", name, parent+"-"), "metadata.name")
	}
	return nil
}

// Validate checks the revision spec; paths are relative to spec. Bounds
// come from config-defaults in ctx (config.FromContextOrDefaults).
func (s *RevisionSpec) Validate(ctx context.Context) *FieldError {
	errs := validateContainers(ctx, s)
	errs = errs.Also(validateInitContainers(ctx, s))
	errs = errs.Also(validateVolumes(ctx, s.Volumes, mountedVolumes(s)).ViaField("volumes"))
	if s.ServiceAccountName != "" {
		errs = errs.Also(validateDNS1123Subdomain(s.ServiceAccountName, "serviceAccountName"))
	}
	errs = errs.Also(validateContainerConcurrency(ctx, s.ContainerConcurrency))
	errs = errs.Also(validatePodSecurityContext(ctx, s.SecurityContext))
	return errs.Also(validateTimeouts(ctx, s))
}

// validateContainers checks the serving container(s). kiln runs one
// container per instance unless multi-container support is enabled; the
// single serving port rule applies across all containers.
func validateContainers(ctx context.Context, s *RevisionSpec) *FieldError {
	var errs *FieldError
	ports := 0
	for _, c := range s.Containers {
		ports += len(c.Ports)
	}
	if ports > 1 {
		errs = errs.Also(ErrGeneric("more than one container port is set", "containers[*].ports"))
	}
	vols := volumeMap(s.Volumes)
	port := servingPort(s.Containers)
	switch len(s.Containers) {
	case 0:
		return errs.Also(ErrMissingField("containers"))
	case 1:
		return errs.Also(validateServingContainer(ctx, &s.Containers[0], vols, port).ViaFieldIndex("containers", 0))
	}
	if !multiContainerEnabled(ctx) {
		return errs.Also(ErrGeneric(fmt.Sprintf("multi-container is off, but found %d containers%s", len(s.Containers), featureHint(config.FeatureMultiContainer))))
	}
	if ports == 0 {
		errs = errs.Also(ErrMissingField("containers[*].ports"))
	}
	names := map[string]bool{}
	for i := range s.Containers {
		c := &s.Containers[i]
		if names[c.Name] {
			errs = errs.Also(ErrGeneric(fmt.Sprintf("duplicate container name %q", c.Name), "name").ViaFieldIndex("containers", i))
		}
		names[c.Name] = true
		if len(c.Ports) == 0 {
			errs = errs.Also(validateSidecarContainer(ctx, c, vols).ViaFieldIndex("containers", i))
		} else {
			errs = errs.Also(validateServingContainer(ctx, c, vols, port).ViaFieldIndex("containers", i))
		}
	}
	return errs
}

// multiContainerEnabled reads the multi-container feature flag.
func multiContainerEnabled(ctx context.Context) bool {
	return config.FromContextOrDefaults(ctx).Features().Enabled(config.FeatureMultiContainer)
}

// validateInitContainers checks init containers, which run to completion
// before the serving containers start (feature kubernetes.podspec-init-containers).
func validateInitContainers(ctx context.Context, s *RevisionSpec) *FieldError {
	if len(s.InitContainers) == 0 {
		return nil
	}
	if !config.FromContextOrDefaults(ctx).Features().Enabled(config.FeatureInitContainers) {
		return ErrGeneric(fmt.Sprintf("pod spec support for init-containers is off, but found %d init containers%s", len(s.InitContainers), featureHint(config.FeatureInitContainers)))
	}
	var errs *FieldError
	names := map[string]bool{}
	for _, c := range s.Containers {
		names[c.Name] = true
	}
	vols := volumeMap(s.Volumes)
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		var e *FieldError
		if names[c.Name] {
			e = e.Also(ErrGeneric(fmt.Sprintf("duplicate container name %q", c.Name), "name"))
		}
		names[c.Name] = true
		if c.ReadinessProbe != nil {
			e = e.Also(ErrGeneric("field not allowed in an init container", "readinessProbe"))
		}
		if c.LivenessProbe != nil {
			e = e.Also(ErrGeneric("field not allowed in an init container", "livenessProbe"))
		}
		for j, p := range c.Ports {
			e = e.Also(validatePortNumber(p).ViaIndex(j).ViaField("ports"))
		}
		e = e.Also(validateContainerCommon(ctx, c, vols, true))
		errs = errs.Also(e.ViaFieldIndex("initContainers", i))
	}
	return errs
}

// validateContainerConcurrency checks 0 <= containerConcurrency <=
// container-concurrency-max-limit (1 when zero is not allowed).
func validateContainerConcurrency(ctx context.Context, cc *int64) *FieldError {
	if cc == nil {
		return nil
	}
	d := config.FromContextOrDefaults(ctx).Defaults()
	lo := int64(0)
	if !d.AllowContainerConcurrencyZero {
		lo = 1
	}
	if *cc < lo || *cc > d.ContainerConcurrencyMaxLimit {
		return ErrOutOfBoundsValue(*cc, lo, d.ContainerConcurrencyMaxLimit, "containerConcurrency")
	}
	return nil
}

// validateTimeouts checks timeoutSeconds (0..max-revision-timeout-seconds;
// 0 means the default), responseStartTimeoutSeconds (0..timeoutSeconds) and
// idleTimeoutSeconds (0..max-revision-timeout-seconds).
func validateTimeouts(ctx context.Context, s *RevisionSpec) *FieldError {
	d := config.FromContextOrDefaults(ctx).Defaults()
	maxTimeout := d.MaxRevisionTimeoutSeconds
	var errs *FieldError
	timeout := d.RevisionTimeoutSeconds
	if t := s.TimeoutSeconds; t != nil {
		if *t < 0 || *t > maxTimeout {
			errs = errs.Also(ErrOutOfBoundsValue(*t, 0, maxTimeout, "timeoutSeconds"))
		} else if *t > 0 {
			timeout = *t
		}
	}
	if t := s.ResponseStartTimeoutSeconds; t != nil && (*t < 0 || *t > timeout) {
		errs = errs.Also(ErrOutOfBoundsValue(*t, 0, timeout, "responseStartTimeoutSeconds"))
	}
	if t := s.IdleTimeoutSeconds; t != nil && (*t < 0 || *t > maxTimeout) {
		errs = errs.Also(ErrOutOfBoundsValue(*t, 0, maxTimeout, "idleTimeoutSeconds"))
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
