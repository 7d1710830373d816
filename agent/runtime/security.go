package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Security hardens one container. The zero value is kiln's default:
// containerd's RuntimeDefault seccomp profile, DefaultCapabilities,
// no_new_privs, the image's user, a writable root filesystem and a
// read-only /sys/fs/cgroup.
type Security struct {
	// UID and GID replace the image's user when set; a UID without a GID
	// runs with that uid's group in the image's /etc/passwd, or gid 0, as
	// Kubernetes does.
	UID, GID *uint32
	// AdditionalGIDs are added to the process's supplementary groups.
	AdditionalGIDs []uint32
	// RunAsNonRoot makes Start fail with ErrRunAsRoot when the process
	// would run as uid 0.
	RunAsNonRoot   bool
	ReadOnlyRootfs bool
	// AllowPrivilegeEscalation leaves no_new_privs unset.
	AllowPrivilegeEscalation bool
	// CapAdd and CapDrop are capability names without CAP_; CapDrop may
	// hold ALL, applied before CapAdd.
	CapAdd, CapDrop []string
	// SeccompUnconfined runs without a seccomp filter.
	SeccompUnconfined bool
}

// ErrRunAsRoot is Start's error when Security.RunAsNonRoot is set and the
// container would run as root. The words are the kubelet's.
var ErrRunAsRoot = errors.New("container has runAsNonRoot and image will run as root")

// DefaultCapabilities is the bounding set of a container that asks for
// nothing: Docker's and containerd's default set, without the ones that
// reach the host (SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, ...).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// hardening returns the spec options that apply s's limits and security.
// They run after the image config, so the image's user is known and a
// runAsUser replaces it. The seccomp profile comes last: containerd's
// default profile allows syscalls by the capabilities left.
func hardening(s Spec) []oci.SpecOpts {
	sec := s.Security
	var opts []oci.SpecOpts
	if sec.UID != nil {
		opts = append(opts, oci.WithUserID(*sec.UID))
	}
	opts = append(opts, withUser(sec), oci.WithMounts([]specs.Mount{cgroupMount}))
	if sec.RunAsNonRoot {
		opts = append(opts, refuseRoot)
	}
	opts = append(opts, withCaps(sec))
	opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
		sp.Process.NoNewPrivileges = !sec.AllowPrivilegeEscalation
		return nil
	})
	if sec.ReadOnlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if s.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(s.PidsLimit))
	}
	if s.RequestMilliCPU > 0 {
		opts = append(opts, oci.WithCPUShares(CPUShares(s.RequestMilliCPU)))
	}
	if s.MilliCPU > 0 {
		const period = 100_000
		opts = append(opts, oci.WithCPUCFS(s.MilliCPU*period/1000, period))
	}
	if s.MemoryMiB > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(s.MemoryMiB)<<20))
	}
	if sec.SeccompUnconfined {
		opts = append(opts, oci.WithSeccompUnconfined)
	} else {
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	return opts
}

// withUser applies runAsGroup and the supplementary groups. A runAsUser
// went before it through oci.WithUserID, which takes the user's group from
// the image's /etc/passwd (0 when the uid has no entry), as containerd's
// CRI does for the kubelet.
func withUser(sec Security) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
		u := &sp.Process.User
		if sec.UID != nil {
			// The image's groups were those of the image's user.
			u.AdditionalGids = nil
		}
		if sec.GID != nil {
			u.GID = *sec.GID
		}
		if sec.UID != nil || sec.GID != nil {
			u.AdditionalGids = append(u.AdditionalGids, u.GID)
		}
		for _, g := range sec.AdditionalGIDs {
			if !slices.Contains(u.AdditionalGids, g) {
				u.AdditionalGids = append(u.AdditionalGids, g)
			}
		}
		return nil
	}
}

func refuseRoot(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
	if sp.Process.User.UID == 0 {
		return ErrRunAsRoot
	}
	return nil
}

func capName(n string) string { return "CAP_" + strings.ToUpper(strings.TrimPrefix(n, "CAP_")) }

// withCaps sets the bounding, permitted and effective sets to
// DefaultCapabilities minus CapDrop plus CapAdd. An added capability is
// also made ambient when the process is not root: runc execs the process
// after switching user, and without ambient the exec clears it, which
// would leave a non-root NET_BIND_SERVICE user unable to bind port 80.
func withCaps(sec Security) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
		var caps []string
		if !slices.Contains(sec.CapDrop, "ALL") {
			for _, c := range DefaultCapabilities {
				if !slices.ContainsFunc(sec.CapDrop, func(d string) bool { return capName(d) == c }) {
					caps = append(caps, c)
				}
			}
		}
		var added []string
		for _, a := range sec.CapAdd {
			c := capName(a)
			added = append(added, c)
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
		if sp.Process.Capabilities == nil {
			return fmt.Errorf("spec has no capabilities")
		}
		pc := sp.Process.Capabilities
		pc.Bounding, pc.Permitted, pc.Effective = caps, slices.Clone(caps), slices.Clone(caps)
		pc.Inheritable, pc.Ambient = nil, nil
		if sp.Process.User.UID != 0 && len(added) > 0 {
			pc.Inheritable, pc.Ambient = slices.Clone(added), slices.Clone(added)
		}
		return nil
	}
}

// CPUShares is the kubelet's conversion of a CPU request to cgroup
// cpu.shares: 1024 per core, at least 2 (runc maps it to cpu.weight on
// cgroup v2).
func CPUShares(milliCPU int64) uint64 {
	return uint64(max(milliCPU*1024/1000, 2))
}
