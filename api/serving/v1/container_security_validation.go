package v1

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/kiln-serving/kiln/api/config"
)

// Knative's securityContext rules (pkg/apis/serving: SecurityContextMask,
// CapabilitiesMask, PodSecurityContextMask, validateSecurityContext), with
// one kiln rule on top: capabilities.add accepts only NET_BIND_SERVICE,
// because an instance shares its VM's kernel with every other instance on
// it and with the agent, so any other capability is a way onto the host.

const (
	minUserID, maxUserID = 0, 2147483647
	// AddableCapability is the one capability a container may add.
	AddableCapability = "NET_BIND_SERVICE"
)

// Seccomp profile types Kubernetes defines.
const (
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompUnconfined     = "Unconfined"
	SeccompLocalhost      = "Localhost"
)

// validateContainerSecurity checks what a container may ask of the node:
// its securityContext and its subPaths (Kubernetes' rules, which Knative
// inherits from the API server). Paths are relative to the container.
func validateContainerSecurity(ctx context.Context, c *Container) *FieldError {
	errs := validateSecurityContext(ctx, c.SecurityContext)
	for i, m := range c.VolumeMounts {
		errs = errs.Also(validateSubPath(m.SubPath).ViaFieldIndex("volumeMounts", i))
	}
	return errs
}

// validateSubPath keeps a subPath inside its volume lexically; the agent
// also refuses symlinks on the way when it mounts it.
func validateSubPath(p string) *FieldError {
	if p == "" {
		return nil
	}
	if path.IsAbs(p) {
		return ErrInvalidValue(p, "subPath", "must be a relative path")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return ErrInvalidValue(p, "subPath", "must not contain '..'")
		}
	}
	return nil
}

// validateSecurityContext checks a container's securityContext; paths are
// relative to the container.
func validateSecurityContext(_ context.Context, sc *SecurityContext) *FieldError {
	if sc == nil {
		return nil
	}
	var errs *FieldError
	if sc.Privileged != nil {
		errs = errs.Also(ErrDisallowedFields("privileged"))
	}
	if sc.SELinuxOptions != nil {
		errs = errs.Also(ErrDisallowedFields("seLinuxOptions"))
	}
	if sc.ProcMount != nil {
		errs = errs.Also(ErrDisallowedFields("procMount"))
	}
	errs = errs.Also(validateIDs(sc.RunAsUser, sc.RunAsGroup, nil))
	if c := sc.Capabilities; c != nil {
		errs = errs.Also(validateCapabilities(c).ViaField("capabilities"))
	}
	errs = errs.Also(validateSeccomp(sc.SeccompProfile).ViaField("seccompProfile"))
	return errs.ViaField("securityContext")
}

// validateCapabilities allows any drop (named capabilities or ALL) and an
// add of NET_BIND_SERVICE only.
func validateCapabilities(c *Capabilities) *FieldError {
	var errs *FieldError
	for i, name := range c.Add {
		if strings.TrimPrefix(name, "CAP_") != AddableCapability {
			errs = errs.Also(ErrDisallowedFields(fmt.Sprintf("add[%d]", i)).
				WithDetails(fmt.Sprintf("capability %q cannot be added; only %s may be", name, AddableCapability)))
		}
	}
	for i, name := range c.Drop {
		if name == "all" {
			// Knative warns on this spelling, which drops nothing in
			// Kubernetes; kiln refuses it rather than run with more than
			// the user meant to keep.
			errs = errs.Also(ErrInvalidValue("all", fmt.Sprintf("drop[%d]", i), "Must be spelled as 'ALL'"))
		} else if !validCapabilityName(name) {
			errs = errs.Also(ErrInvalidValue(name, fmt.Sprintf("drop[%d]", i), "not a Linux capability name"))
		}
	}
	return errs
}

// validCapabilityName accepts ALL and upper-case capability names with or
// without the CAP_ prefix; the agent decides which ones the kernel knows.
func validCapabilityName(name string) bool {
	if name == "ALL" {
		return true
	}
	n := strings.TrimPrefix(name, "CAP_")
	if n == "" || len(n) > 32 {
		return false
	}
	for _, r := range n {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

func validateSeccomp(p *SeccompProfile) *FieldError {
	if p == nil {
		return nil
	}
	switch p.Type {
	case SeccompRuntimeDefault, SeccompUnconfined:
		if p.LocalhostProfile != nil {
			return ErrDisallowedFields("localhostProfile")
		}
		return nil
	case SeccompLocalhost:
		// A profile file on the node is node configuration kiln does not
		// manage; refusing is better than starting without it.
		return ErrGeneric("Localhost seccomp profiles are not supported; use RuntimeDefault or Unconfined", "type")
	case "":
		return ErrMissingField("type")
	}
	return ErrInvalidValue(p.Type, "type")
}

func validateIDs(uid, gid *int64, groups []int64) *FieldError {
	var errs *FieldError
	if uid != nil && (*uid < minUserID || *uid > maxUserID) {
		errs = errs.Also(ErrOutOfBoundsValue(*uid, minUserID, maxUserID, "runAsUser"))
	}
	if gid != nil && (*gid < minUserID || *gid > maxUserID) {
		errs = errs.Also(ErrOutOfBoundsValue(*gid, minUserID, maxUserID, "runAsGroup"))
	}
	for i, g := range groups {
		if g < minUserID || g > maxUserID {
			errs = errs.Also(ErrOutOfBoundsValue(g, minUserID, maxUserID, fmt.Sprintf("supplementalGroups[%d]", i)))
		}
	}
	return errs
}

// validatePodSecurityContext checks spec.securityContext; paths are relative
// to the revision spec. As in Knative, only seccompProfile may be set unless
// kubernetes.podspec-securitycontext is enabled; seLinuxOptions and sysctls
// never may. fsGroup is refused too: kiln binds host directories and does
// not chown them.
func validatePodSecurityContext(ctx context.Context, sc *PodSecurityContext) *FieldError {
	if sc == nil {
		return nil
	}
	enabled := config.FromContextOrDefaults(ctx).Features().Enabled(config.FeatureSecurityContext)
	var errs *FieldError
	var gated []string
	if sc.RunAsUser != nil {
		gated = append(gated, "runAsUser")
	}
	if sc.RunAsGroup != nil {
		gated = append(gated, "runAsGroup")
	}
	if sc.RunAsNonRoot != nil {
		gated = append(gated, "runAsNonRoot")
	}
	if len(sc.SupplementalGroups) > 0 {
		gated = append(gated, "supplementalGroups")
	}
	if !enabled && len(gated) > 0 {
		errs = errs.Also(ErrDisallowedFields(gated...).
			WithDetails(featureHint(config.FeatureSecurityContext)[1:]))
	}
	if sc.FSGroup != nil {
		errs = errs.Also(ErrDisallowedFields("fsGroup").WithDetails("kiln does not change the ownership of volumes"))
	}
	if sc.SELinuxOptions != nil {
		errs = errs.Also(ErrDisallowedFields("seLinuxOptions"))
	}
	if len(sc.Sysctls) > 0 {
		errs = errs.Also(ErrDisallowedFields("sysctls"))
	}
	errs = errs.Also(validateIDs(sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups))
	errs = errs.Also(validateSeccomp(sc.SeccompProfile).ViaField("seccompProfile"))
	return errs.ViaField("securityContext")
}
