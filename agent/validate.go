package agent

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/distribution/reference"

	"github.com/kiln-serving/kiln/internal/cluster"
)

// The agent does not trust etcd: anyone who can write placements/<node>/
// would otherwise choose host paths, capabilities and container IDs on
// this node. Every placement is checked before anything is done for it;
// a bad one fails only its own instance (reason InvalidPlacement). The
// rules are the API's where the API has one (names, paths, images, ports,
// capabilities), restated here because the placement did not necessarily
// come through the API.

const reasonInvalidPlacement = "InvalidPlacement"

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// claimName is a DNS-1123 subdomain: a claim's name is a directory name
// under the volume root and must not be "." or "..".
var claimName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func checkLabel(what, v string) error {
	if len(v) > 63 || !dnsLabel.MatchString(v) {
		return fmt.Errorf("%s %q is not a DNS label", what, v)
	}
	return nil
}

// validName reports whether an instance name is safe to use as a
// containerd ID and a file name under the state directory.
func validName(name string) bool { return checkLabel("instance", name) == nil }

// validatePlacement checks one placement named name. Errors say which
// field is wrong; all of them are collected.
func validatePlacement(name string, p cluster.Placement) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkLabel("instance", name))
	if p.Instance != "" && p.Instance != name {
		add(fmt.Errorf("placement names instance %q, its key %q", p.Instance, name))
	}
	s := p.Spec
	add(checkLabel("namespace", s.Namespace))
	add(checkLabel("revision", s.Revision))
	for what, v := range map[string]string{"service": s.Service, "configuration": s.Configuration, "container": s.ContainerName} {
		if v != "" {
			add(checkLabel(what, v))
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		add(fmt.Errorf("port %d is outside 0-65535", s.Port))
	}
	if s.ContainerConcurrency < 0 || s.TimeoutSeconds < 0 {
		add(errors.New("containerConcurrency and timeoutSeconds must not be negative"))
	}
	if s.ReadinessPath != "" && !strings.HasPrefix(s.ReadinessPath, "/") {
		add(fmt.Errorf("readiness path %q is not absolute", s.ReadinessPath))
	}
	if s.ResponseStartTimeoutSeconds < 0 || s.IdleTimeoutSeconds < 0 {
		add(errors.New("responseStartTimeoutSeconds and idleTimeoutSeconds must not be negative"))
	}
	add(checkProbe("readiness", s.Readiness))
	add(checkProbe("liveness", s.Liveness))
	vols := map[string]cluster.Volume{}
	for _, v := range s.Volumes {
		add(checkVolume(v))
		if _, dup := vols[v.Name]; dup {
			add(fmt.Errorf("volume %q is declared twice", v.Name))
		}
		vols[v.Name] = v
	}
	serving := cluster.ContainerSpec{
		Name: s.ContainerName, Image: s.Image, Command: s.Command, Args: s.Args, WorkingDir: s.WorkingDir,
		Env: s.Env, EnvRefs: s.EnvRefs, EnvFrom: s.EnvFrom, Mounts: s.Mounts, MilliCPU: s.MilliCPU, MemoryMiB: s.MemoryMiB,
		LimitMilliCPU: s.LimitMilliCPU, LimitMemoryMiB: s.LimitMemoryMiB, Security: s.Security,
	}
	add(checkContainer("serving container", serving, vols))
	names := map[string]bool{s.ContainerName: true}
	for _, cs := range [][]cluster.ContainerSpec{s.Sidecars, s.InitContainers} {
		for _, c := range cs {
			what := fmt.Sprintf("container %q", c.Name)
			add(checkLabel("container", c.Name))
			if names[c.Name] {
				add(fmt.Errorf("%s: name used twice", what))
			}
			names[c.Name] = true
			add(checkContainer(what, c, vols))
		}
	}
	return errors.Join(errs...)
}

// checkProbe checks the probe named what (nil is none): one action, a
// port in range, an absolute HTTP path with an HTTP or HTTPS scheme, no
// negative durations or counts. (Header names and values are net/http's
// to refuse when the probe is sent.)
func checkProbe(what string, p *cluster.Probe) error {
	if p == nil {
		return nil
	}
	var errs []error
	actions := 0
	for _, set := range []bool{p.HTTPGet != nil, p.TCPSocket, len(p.Exec) > 0, p.GRPC != nil} {
		if set {
			actions++
		}
	}
	if actions != 1 {
		errs = append(errs, fmt.Errorf("%s probe: needs exactly one of httpGet, tcpSocket, exec and grpc, has %d", what, actions))
	}
	if p.Port < 0 || p.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s probe: port %d is outside 0-65535", what, p.Port))
	}
	if g := p.HTTPGet; g != nil {
		if !strings.HasPrefix(g.Path, "/") {
			errs = append(errs, fmt.Errorf("%s probe: httpGet.path %q is not absolute", what, g.Path))
		}
		if sc := strings.ToUpper(g.Scheme); sc != "" && sc != "HTTP" && sc != "HTTPS" {
			errs = append(errs, fmt.Errorf("%s probe: httpGet.scheme %q is not HTTP or HTTPS", what, g.Scheme))
		}
	}
	for _, n := range []int32{p.InitialDelaySeconds, p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s probe: initialDelaySeconds, timeoutSeconds, periodSeconds and thresholds must not be negative", what))
			break
		}
	}
	return errors.Join(errs...)
}

func checkVolume(v cluster.Volume) error {
	if err := checkLabel("volume", v.Name); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{v.EmptyDir != nil, v.PersistentVolumeClaim != nil, v.Secret != nil, v.ConfigMap != nil, v.Projected != nil} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("volume %q has two sources", v.Name)
	case v.Secret != nil:
		return checkKeysVolume(v.Name, v.Secret)
	case v.ConfigMap != nil:
		return checkKeysVolume(v.Name, v.ConfigMap)
	case v.Projected != nil:
		var errs []error
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				errs = append(errs, checkKeysVolume(v.Name, src.Secret))
			case src.ConfigMap != nil:
				errs = append(errs, checkKeysVolume(v.Name, src.ConfigMap))
			case src.ServiceAccountToken != nil:
				errs = append(errs, checkFilePath(v.Name, src.ServiceAccountToken.Path))
			default:
				errs = append(errs, fmt.Errorf("volume %q: a projected source names nothing", v.Name))
			}
		}
		return errors.Join(errs...)
	case v.EmptyDir != nil:
		if m := v.EmptyDir.Medium; m != "" && m != "Memory" {
			return fmt.Errorf("volume %q: emptyDir medium %q", v.Name, m)
		}
		if v.EmptyDir.SizeLimitMiB < 0 {
			return fmt.Errorf("volume %q: negative sizeLimit", v.Name)
		}
	case v.PersistentVolumeClaim != nil:
		c := v.PersistentVolumeClaim.ClaimName
		if len(c) > 253 || !claimName.MatchString(c) {
			return fmt.Errorf("volume %q: invalid claim name %q", v.Name, c)
		}
	}
	return nil
}

// checkObjectName accepts a ConfigMap or Secret name: a DNS-1123
// subdomain, so that it names one key under configmaps/<ns>/ or
// secrets/<ns>/ and nothing beside it.
func checkObjectName(what, name string) error {
	if len(name) > 253 || !claimName.MatchString(name) {
		return fmt.Errorf("%s: invalid ConfigMap or Secret name %q", what, name)
	}
	return nil
}

func checkKeysVolume(vol string, kv *cluster.KeysVolume) error {
	errs := []error{checkObjectName(fmt.Sprintf("volume %q", vol), kv.Name)}
	for _, it := range kv.Items {
		errs = append(errs, checkFilePath(vol, it.Path))
	}
	return errors.Join(errs...)
}

// checkFilePath accepts a file path of a secret, configMap or projected
// volume: relative, inside the volume.
func checkFilePath(vol, p string) error {
	if p == "" || checkSubPath(p) != nil || path.Clean(p) == "." {
		return fmt.Errorf("volume %q: file path %q must be a relative path inside the volume", vol, p)
	}
	return nil
}

// checkEnvSources checks the ConfigMaps and Secrets a container's
// environment names.
func checkEnvSources(c cluster.ContainerSpec) error {
	var errs []error
	for k, r := range c.EnvRefs {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("environment variable %q", k))
		}
		if (r.ConfigMap == "") == (r.Secret == "") {
			errs = append(errs, fmt.Errorf("environment variable %q must name one ConfigMap or Secret", k))
			continue
		}
		errs = append(errs, checkObjectName(fmt.Sprintf("environment variable %q", k), r.ConfigMap+r.Secret))
	}
	for _, f := range c.EnvFrom {
		if (f.ConfigMap == "") == (f.Secret == "") {
			errs = append(errs, errors.New("envFrom must name one ConfigMap or Secret"))
			continue
		}
		errs = append(errs, checkObjectName("envFrom", f.ConfigMap+f.Secret))
		if strings.ContainsAny(f.Prefix, "=\x00") {
			errs = append(errs, fmt.Errorf("envFrom prefix %q", f.Prefix))
		}
	}
	return errors.Join(errs...)
}

func checkContainer(what string, c cluster.ContainerSpec, vols map[string]cluster.Volume) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf(what+": "+format, a...))
	}
	if _, err := reference.ParseDockerRef(c.Image); err != nil {
		bad("image %q: %v", c.Image, err)
	}
	if c.WorkingDir != "" && !path.IsAbs(c.WorkingDir) {
		bad("workingDir %q is not absolute", c.WorkingDir)
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			bad("environment variable %q", k)
		}
	}
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if strings.ContainsRune(a, 0) {
			bad("command or argument holds a NUL byte")
		}
	}
	if err := checkEnvSources(c); err != nil {
		bad("%v", err)
	}
	if c.MilliCPU < 0 || c.MemoryMiB < 0 || c.LimitMilliCPU < 0 || c.LimitMemoryMiB < 0 {
		bad("negative resources")
	}
	seen := map[string]bool{}
	for _, m := range c.Mounts {
		if _, ok := vols[m.Volume]; !ok {
			bad("mount %q: no volume %q", m.Path, m.Volume)
		}
		clean := path.Clean(m.Path)
		switch {
		case !path.IsAbs(m.Path) || strings.ContainsRune(m.Path, 0):
			bad("mount path %q is not absolute", m.Path)
		case clean == "/" || clean == "/dev" || clean == "/dev/log" || clean == "/proc":
			bad("mount path %q is reserved", m.Path)
		case seen[clean]:
			bad("mount path %q is used twice", m.Path)
		}
		seen[clean] = true
		if err := checkSubPath(m.SubPath); err != nil {
			bad("mount %q: %v", m.Path, err)
		}
	}
	if sec := c.Security; sec != nil {
		const maxID = 2147483647
		for _, id := range append([]*int64{sec.RunAsUser, sec.RunAsGroup}, ptrs(sec.SupplementalGroups)...) {
			if id != nil && (*id < 0 || *id > maxID) {
				bad("user or group id %d is outside 0-%d", *id, maxID)
			}
		}
		for _, a := range sec.CapAdd {
			if a != "NET_BIND_SERVICE" {
				bad("capability %q cannot be added; only NET_BIND_SERVICE may be", a)
			}
		}
		for _, d := range sec.CapDrop {
			if d != "ALL" && !capName.MatchString(d) {
				bad("capability %q is not a capability name", d)
			}
		}
	}
	return errors.Join(errs...)
}

var capName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)

// checkSubPath accepts a relative path that stays within its volume
// lexically; symlinks inside the volume are dealt with when it is mounted
// (resolveSubPath).
func checkSubPath(p string) error {
	if p == "" {
		return nil
	}
	if path.IsAbs(p) || strings.ContainsRune(p, 0) {
		return fmt.Errorf("subPath %q must be a relative path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("subPath %q must not contain '..'", p)
		}
	}
	return nil
}

func ptrs(v []int64) []*int64 {
	out := make([]*int64, len(v))
	for i := range v {
		out[i] = &v[i]
	}
	return out
}
