package v1

import (
	"context"
	"fmt"
	"math/big"
	"path"
	"regexp"
	"strings"

	"github.com/kiln-serving/kiln/api/config"
)

// reservedPorts are used by the queue-proxy next to the user container
// (8012, 8013 serving, 8022 admin, 9090/9091 metrics, 8008 profiling).
var reservedPorts = map[int32]bool{8012: true, 8013: true, 8022: true, 9090: true, 9091: true, 8008: true}

// reservedEnv are set by the platform on every serving container; sidecars
// and init containers may set PORT.
var reservedEnv = map[string]bool{"PORT": true, "K_SERVICE": true, "K_CONFIGURATION": true, "K_REVISION": true}

// reservedPaths cannot be mount points.
var reservedPaths = map[string]bool{"/": true, "/dev": true, "/dev/log": true}

// reservedContainerNames are taken by the platform.
var reservedContainerNames = map[string]bool{"queue-proxy": true}

// validPortNames select the protocol the queue-proxy speaks to the app.
var validPortNames = map[string]bool{"": true, "h2c": true, "http1": true}

// servingPort is the one declared port across containers, defaulted to
// 8080; probes that name a port must name this one.
func servingPort(cs []Container) ContainerPort {
	p := ContainerPort{Name: "http", ContainerPort: DefaultUserPort}
	for _, c := range cs {
		if len(c.Ports) > 0 {
			p = c.Ports[0]
			if p.ContainerPort == 0 {
				p.ContainerPort = DefaultUserPort
			}
		}
	}
	return p
}

func volumeMap(vs []Volume) map[string]*Volume {
	out := make(map[string]*Volume, len(vs))
	for i := range vs {
		out[vs[i].Name] = &vs[i]
	}
	return out
}

func mountedVolumes(s *RevisionSpec) map[string]bool {
	out := map[string]bool{}
	for _, cs := range [][]Container{s.Containers, s.InitContainers} {
		for _, c := range cs {
			for _, m := range c.VolumeMounts {
				out[m.Name] = true
			}
		}
	}
	return out
}

// validateServingContainer checks a container that receives requests;
// paths are relative to it.
func validateServingContainer(ctx context.Context, c *Container, vols map[string]*Volume, port ContainerPort) *FieldError {
	errs := validateProbe(c.LivenessProbe, port, false).ViaField("livenessProbe")
	errs = errs.Also(validateProbe(c.ReadinessProbe, port, true).ViaField("readinessProbe"))
	if len(c.Ports) > 0 {
		errs = errs.Also(validateServingPort(c.Ports[0]).ViaField("ports"))
	}
	return errs.Also(validateContainerCommon(ctx, c, vols, false))
}

// validateSidecarContainer checks a non-serving container of a
// multi-container revision: probes are not allowed there.
func validateSidecarContainer(ctx context.Context, c *Container, vols map[string]*Volume) *FieldError {
	var errs *FieldError
	if c.LivenessProbe != nil {
		errs = errs.Also(ErrDisallowedFields("livenessProbe"))
	}
	if c.ReadinessProbe != nil {
		errs = errs.Also(ErrDisallowedFields("readinessProbe"))
	}
	return errs.Also(validateContainerCommon(ctx, c, vols, true))
}

// validateContainerCommon checks what every container kind shares.
// sidecar relaxes the reserved environment variables (PORT is allowed).
func validateContainerCommon(ctx context.Context, c *Container, vols map[string]*Volume, sidecar bool) *FieldError {
	var errs *FieldError
	if c.Name != "" {
		errs = errs.Also(validateDNS1123Label(c.Name, "name"))
	}
	if reservedContainerNames[c.Name] {
		errs = errs.Also(ErrGeneric(fmt.Sprintf("%q is a reserved container name", c.Name), "name"))
	}
	switch {
	case strings.TrimSpace(c.Image) == "":
		errs = errs.Also(ErrMissingField("image"))
	case !imageRef.MatchString(c.Image):
		errs = errs.Also(ErrGeneric(fmt.Sprintf("Failed to parse image reference %q", c.Image), "image"))
	}
	for i, e := range c.Env {
		switch {
		case e.Name == "":
			errs = errs.Also(ErrMissingField("name").ViaFieldIndex("env", i))
		case !envName.MatchString(e.Name):
			errs = errs.Also(ErrInvalidValue(e.Name, "name", envNameMessage).ViaFieldIndex("env", i))
		case reservedEnv[e.Name] && !(sidecar && e.Name == "PORT"):
			errs = errs.Also(ErrGeneric(fmt.Sprintf("%q is a reserved environment variable", e.Name), "name").ViaFieldIndex("env", i))
		}
		if e.ValueFrom != nil {
			if e.Value != "" {
				errs = errs.Also(ErrMultipleOneOf("value", "valueFrom").ViaFieldIndex("env", i))
			}
			if (e.ValueFrom.SecretKeyRef == nil) == (e.ValueFrom.ConfigMapKeyRef == nil) {
				errs = errs.Also(ErrGeneric("expected exactly one, got both or neither", "secretKeyRef", "configMapKeyRef").ViaField("valueFrom").ViaFieldIndex("env", i))
			}
			if k := e.ValueFrom.SecretKeyRef; k != nil {
				errs = errs.Also(validateKeyRef(k).ViaField("secretKeyRef").ViaField("valueFrom").ViaFieldIndex("env", i))
			}
			if k := e.ValueFrom.ConfigMapKeyRef; k != nil {
				errs = errs.Also(validateKeyRef(k).ViaField("configMapKeyRef").ViaField("valueFrom").ViaFieldIndex("env", i))
			}
		}
	}
	for i, e := range c.EnvFrom {
		switch {
		case e.SecretRef != nil && e.ConfigMapRef != nil:
			errs = errs.Also(ErrMultipleOneOf("configMapRef", "secretRef").ViaFieldIndex("envFrom", i))
		case e.SecretRef == nil && e.ConfigMapRef == nil:
			errs = errs.Also(ErrMissingOneOf("configMapRef", "secretRef").ViaFieldIndex("envFrom", i))
		}
		errs = errs.Also(validateEnvFrom(e).ViaFieldIndex("envFrom", i))
	}
	errs = errs.Also(validateResources(&c.Resources).ViaField("resources"))
	errs = errs.Also(validateVolumeMounts(c.VolumeMounts, vols).ViaField("volumeMounts"))
	if p := c.ImagePullPolicy; p != "" && p != "Always" && p != "IfNotPresent" && p != "Never" {
		errs = errs.Also(ErrInvalidValue(p, "imagePullPolicy"))
	}
	switch c.TerminationMessagePolicy {
	case "", "File", "FallbackToLogsOnError":
	default:
		errs = errs.Also(ErrInvalidValue(c.TerminationMessagePolicy, "terminationMessagePolicy"))
	}
	return errs.Also(validateContainerSecurity(ctx, c))
}

// imageRef accepts [host[:port]/]path[:tag][@digest] with lower-case path
// components, as go-containerregistry's weak validation does.
var imageRef = regexp.MustCompile(`^(([a-zA-Z0-9.-]+)(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

// validateServingPort checks the serving port; paths are relative to
// "ports" (Knative reports ports.containerPort, without an index).
func validateServingPort(p ContainerPort) *FieldError {
	errs := validatePortNumber(p)
	if p.Protocol != "" && p.Protocol != "TCP" {
		errs = errs.Also(ErrInvalidValue(p.Protocol, "protocol"))
	}
	if !validPortNames[p.Name] {
		errs = errs.Also(ErrGeneric(fmt.Sprintf("Port name %v is not allowed, name must be empty, or one of: 'h2c', 'http1'", p.Name)))
	}
	return errs
}

func validatePortNumber(p ContainerPort) *FieldError {
	var errs *FieldError
	if reservedPorts[p.ContainerPort] {
		errs = errs.Also(ErrInvalidValue(fmt.Sprintf("%d is a reserved port", p.ContainerPort), "containerPort").
			WithDetails(fmt.Sprintf("%d is a reserved port, please use a different value", p.ContainerPort)))
	}
	if p.ContainerPort < 0 || p.ContainerPort > 65535 {
		errs = errs.Also(ErrOutOfBoundsValue(p.ContainerPort, 0, 65535, "containerPort"))
	}
	return errs
}

// validateProbe checks a liveness or readiness probe against the serving
// port; readiness adds Knative's rules for its aggressive (period 0) mode.
func validateProbe(p *Probe, port ContainerPort, readiness bool) *FieldError {
	if p == nil {
		return nil
	}
	var errs *FieldError
	var handlers []string
	if p.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		if pp := p.HTTPGet.Port; pp != nil && pp.IsString && pp.StrVal != port.Name {
			errs = errs.Also(ErrInvalidValue(pp.String(), "httpGet.port", "Probe port must match container port"))
		}
	}
	if p.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
		if pp := p.TCPSocket.Port; pp != nil && pp.IsString && pp.StrVal != port.Name {
			errs = errs.Also(ErrInvalidValue(pp.String(), "tcpSocket.port", "Probe port must match container port"))
		}
	}
	if p.Exec != nil {
		handlers = append(handlers, "exec")
	}
	if p.GRPC != nil {
		handlers = append(handlers, "grpc")
	}
	switch {
	case len(handlers) == 0:
		errs = errs.Also(ErrMissingOneOf("httpGet", "tcpSocket", "exec", "grpc"))
	case len(handlers) > 1:
		errs = errs.Also(ErrMultipleOneOf(handlers...))
	}
	if !readiness {
		return errs
	}
	const maxInt32 = 2147483647
	if p.PeriodSeconds < 0 {
		errs = errs.Also(ErrOutOfBoundsValue(p.PeriodSeconds, 0, maxInt32, "periodSeconds"))
	}
	if p.InitialDelaySeconds < 0 {
		errs = errs.Also(ErrOutOfBoundsValue(p.InitialDelaySeconds, 0, maxInt32, "initialDelaySeconds"))
	}
	if p.SuccessThreshold < 1 {
		errs = errs.Also(ErrOutOfBoundsValue(p.SuccessThreshold, 1, maxInt32, "successThreshold"))
	}
	if p.PeriodSeconds == 0 {
		// Period 0 is Knative's aggressive probing; thresholds do not apply.
		if p.FailureThreshold != 0 {
			errs = errs.Also(ErrGeneric("failureThreshold is disallowed when periodSeconds is zero", "failureThreshold"))
		}
		if p.TimeoutSeconds != 0 {
			errs = errs.Also(ErrGeneric("timeoutSeconds is disallowed when periodSeconds is zero", "timeoutSeconds"))
		}
		return errs
	}
	if p.TimeoutSeconds < 1 {
		errs = errs.Also(ErrOutOfBoundsValue(p.TimeoutSeconds, 1, maxInt32, "timeoutSeconds"))
	}
	if p.FailureThreshold < 1 {
		errs = errs.Also(ErrOutOfBoundsValue(p.FailureThreshold, 1, maxInt32, "failureThreshold"))
	}
	return errs
}

// quantity is a Kubernetes resource quantity: a decimal number with an
// optional binary (Ki..Ei) or SI (n..E) suffix.
var quantity = regexp.MustCompile(`^([+-]?[0-9]+(\.[0-9]*)?|[+-]?\.[0-9]+)(e[+-]?[0-9]+|E[+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$`)

var quantityScale = map[string]*big.Rat{
	"Ki": new(big.Rat).SetInt64(1 << 10), "Mi": new(big.Rat).SetInt64(1 << 20), "Gi": new(big.Rat).SetInt64(1 << 30),
	"Ti": new(big.Rat).SetInt64(1 << 40), "Pi": new(big.Rat).SetInt64(1 << 50), "Ei": new(big.Rat).SetInt64(1 << 60),
	"n": big.NewRat(1, 1e9), "u": big.NewRat(1, 1e6), "m": big.NewRat(1, 1e3), "": big.NewRat(1, 1),
	"k": big.NewRat(1e3, 1), "M": big.NewRat(1e6, 1), "G": big.NewRat(1e9, 1), "T": big.NewRat(1e12, 1),
	"P": big.NewRat(1e15, 1), "E": big.NewRat(1e18, 1),
}

// parseQuantity returns q's value in base units, or nil when malformed.
func parseQuantity(q string) *big.Rat {
	m := quantity.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return nil
	}
	// An exponent of many digits would make big.Rat build a huge number
	// before any bound is checked; no real quantity needs more than two.
	if exp := strings.TrimLeft(m[3], "eE+-"); len(exp) > 2 {
		return nil
	}
	num := m[1] + m[3]
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil
	}
	return v.Mul(v, quantityScale[m[4]])
}

// validateResources checks that every quantity parses, is not negative, and
// that a request does not exceed its limit, as Kubernetes does.
func validateResources(r *ResourceRequirements) *FieldError {
	var errs *FieldError
	parsed := map[string]map[string]*big.Rat{"limits": {}, "requests": {}}
	for kind, m := range map[string]map[string]string{"limits": r.Limits, "requests": r.Requests} {
		for name, q := range m {
			v := parseQuantity(q)
			switch {
			case v == nil:
				errs = errs.Also(ErrInvalidValue(q, kind+"."+name, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
			case v.Sign() < 0:
				errs = errs.Also(ErrInvalidValue(q, kind+"."+name, "must be greater than or equal to 0"))
			case v.Cmp(maxQuantity) > 0:
				errs = errs.Also(ErrInvalidValue(q, kind+"."+name, maxQuantityMessage))
			default:
				parsed[kind][name] = v
			}
		}
	}
	for name, req := range parsed["requests"] {
		if lim, ok := parsed["limits"][name]; ok && req.Cmp(lim) > 0 {
			errs = errs.Also(ErrInvalidValue(r.Requests[name], "requests."+name, fmt.Sprintf("must be less than or equal to %s limit of %s", name, r.Limits[name])))
		}
	}
	return errs
}

// validateVolumeMounts checks mounts against the revision's volumes.
func validateVolumeMounts(mounts []VolumeMount, vols map[string]*Volume) *FieldError {
	var errs *FieldError
	seen := map[string]bool{}
	for i, m := range mounts {
		var e *FieldError
		v, ok := vols[m.Name]
		if !ok {
			e = e.Also(ErrGeneric("volumeMount has no matching volume", "name"))
		}
		clean := path.Clean(m.MountPath)
		switch {
		case m.MountPath == "":
			e = e.Also(ErrMissingField("mountPath"))
		case reservedPaths[clean]:
			e = e.Also(ErrGeneric(fmt.Sprintf("mountPath %q is a reserved path", clean), "mountPath"))
		case !path.IsAbs(m.MountPath):
			e = e.Also(ErrInvalidValue(m.MountPath, "mountPath"))
		case seen[clean]:
			e = e.Also(ErrInvalidValue(fmt.Sprintf("%q must be unique", m.MountPath), "mountPath"))
		}
		seen[clean] = true
		if ok {
			if v.EmptyDir == nil && v.PersistentVolumeClaim == nil && !m.ReadOnly {
				e = e.Also(ErrGeneric("volume mount should be readOnly for this type of volume", "readOnly"))
			}
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly && !m.ReadOnly {
				e = e.Also(ErrGeneric("volume is readOnly but volume mount is not", "readOnly"))
			}
		}
		errs = errs.Also(e.ViaIndex(i))
	}
	return errs
}

// validateVolumes checks the revision's volumes; emptyDir and
// persistentVolumeClaim sources need their feature flags.
func validateVolumes(ctx context.Context, vs []Volume, mounted map[string]bool) *FieldError {
	features := config.FromContextOrDefaults(ctx).Features()
	var errs *FieldError
	seen := map[string]bool{}
	for i, v := range vs {
		var e *FieldError
		switch {
		case v.Name == "":
			e = e.Also(ErrMissingField("name"))
		case validateDNS1123Label(v.Name, "name") != nil:
			e = e.Also(ErrInvalidValue(v.Name, "name"))
		case seen[v.Name]:
			e = e.Also(ErrGeneric(fmt.Sprintf("duplicate volume name %q", v.Name), "name"))
		}
		if v.Name != "" && !mounted[v.Name] {
			e = e.Also(ErrGeneric(fmt.Sprintf("volume with name %q not mounted", v.Name), "name"))
		}
		seen[v.Name] = true
		var set []string
		if v.Secret != nil {
			set = append(set, "secret")
			e = e.Also(validateSecretVolume(v.Secret).ViaField("secret"))
		}
		if v.ConfigMap != nil {
			set = append(set, "configMap")
			e = e.Also(validateConfigMapVolume(v.ConfigMap).ViaField("configMap"))
		}
		if v.Projected != nil {
			set = append(set, "projected")
			e = e.Also(validateProjectedVolume(v.Projected).ViaField("projected"))
		}
		if v.EmptyDir != nil {
			set = append(set, "emptyDir")
			if !features.Enabled(config.FeatureEmptyDir) {
				e = e.Also(ErrGeneric(fmt.Sprintf("EmptyDir volume support is disabled, but found EmptyDir volume %s%s", v.Name, featureHint(config.FeatureEmptyDir))))
			}
			if md := v.EmptyDir.Medium; md != "" && md != "Memory" {
				e = e.Also(ErrInvalidValue(md, "emptyDir.medium"))
			}
			if sl := v.EmptyDir.SizeLimit; sl != "" {
				if q := parseQuantity(sl); q == nil || q.Sign() < 0 || q.Cmp(maxQuantity) > 0 {
					e = e.Also(ErrInvalidValue(sl, "emptyDir.sizeLimit"))
				}
			}
		}
		if c := v.PersistentVolumeClaim; c != nil {
			set = append(set, "persistentVolumeClaim")
			if !features.Enabled(config.FeaturePVC) {
				e = e.Also(ErrGeneric(fmt.Sprintf("Persistent volume claim support is disabled, but found persistent volume claim %s%s", c.ClaimName, featureHint(config.FeaturePVC))))
			}
			if !c.ReadOnly && !features.Enabled(config.FeaturePVCWrite) {
				e = e.Also(ErrGeneric(fmt.Sprintf("Persistent volume write support is disabled, but found persistent volume claim %s that is not read-only%s", c.ClaimName, featureHint(config.FeaturePVCWrite))))
			}
		}
		switch {
		case len(set) == 0:
			alts := []string{"secret", "configMap", "projected"}
			if features.Enabled(config.FeatureEmptyDir) {
				alts = append(alts, "emptyDir")
			}
			if features.Enabled(config.FeaturePVC) {
				alts = append(alts, "persistentVolumeClaim")
			}
			e = e.Also(ErrMissingOneOf(alts...))
		case len(set) > 1:
			e = e.Also(ErrMultipleOneOf(set...))
		}
		errs = errs.Also(e.ViaIndex(i))
	}
	return errs
}

// featureHint tells the user which config-features flag turns a refused
// field on (Knative's messages do not, which leaves users guessing).
func featureHint(flag string) string {
	return fmt.Sprintf(" (enable feature %q: kiln config set features %s=enabled)", flag, flag)
}
