package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func u32(v uint32) *uint32 { return &v }

// specFor builds the OCI spec Start would give a container whose image
// runs as imageUID, without containerd. The image's /etc/passwd has user
// app, uid 2020, group 3030.
func specFor(t *testing.T, s Spec, imageUID uint32) (*oci.Spec, error) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "kiln-test")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:2020:3030::/home/app:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	imageUser := func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
		sp.Root.Path = root
		sp.Process.User.UID, sp.Process.User.GID = imageUID, imageUID
		sp.Process.User.AdditionalGids = []uint32{imageUID, 10}
		return nil
	}
	return oci.GenerateSpecWithPlatform(ctx, nil, "linux/amd64", &containers.Container{ID: "c"},
		append([]oci.SpecOpts{imageUser}, hardening(s)...)...)
}

func TestHardeningSpec(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		imageUID uint32
		err      error
		check    func(t *testing.T, sp *oci.Spec)
	}{
		{name: "defaults", spec: Spec{PidsLimit: 1024}, check: func(t *testing.T, sp *oci.Spec) {
			p := sp.Process
			if !p.NoNewPrivileges {
				t.Error("no_new_privs not set")
			}
			if !slices.Equal(p.Capabilities.Bounding, DefaultCapabilities) || !slices.Equal(p.Capabilities.Effective, DefaultCapabilities) {
				t.Errorf("caps = %v", p.Capabilities.Bounding)
			}
			if slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") || len(p.Capabilities.Ambient) > 0 {
				t.Errorf("caps = %+v", p.Capabilities)
			}
			if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != "SCMP_ACT_ERRNO" || len(sp.Linux.Seccomp.Syscalls) == 0 {
				t.Errorf("seccomp = %+v", sp.Linux.Seccomp)
			}
			if r := sp.Linux.Resources; r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 1024 {
				t.Errorf("pids = %+v", r.Pids)
			}
			if r := sp.Linux.Resources; r.CPU != nil || r.Memory != nil {
				t.Errorf("cpu %+v memory %+v without limits", r.CPU, r.Memory)
			}
			if sp.Root.Readonly || p.User.UID != 0 {
				t.Errorf("readonly %v uid %d", sp.Root.Readonly, p.User.UID)
			}
			i := slices.IndexFunc(sp.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys/fs/cgroup" })
			if i < 0 || sp.Mounts[i].Type != "cgroup" || !slices.Contains(sp.Mounts[i].Options, "ro") {
				t.Errorf("no read-only cgroup mount at /sys/fs/cgroup: %+v", sp.Mounts)
			}
		}},
		{name: "limits", spec: Spec{MilliCPU: 500, MemoryMiB: 256}, check: func(t *testing.T, sp *oci.Spec) {
			r := sp.Linux.Resources
			if r.CPU == nil || *r.CPU.Quota != 50_000 || *r.CPU.Period != 100_000 || r.CPU.Shares != nil {
				t.Errorf("cpu = %+v", r.CPU)
			}
			if r.Memory == nil || *r.Memory.Limit != 256<<20 {
				t.Errorf("memory = %+v", r.Memory)
			}
		}},
		{name: "cpu request as shares", spec: Spec{RequestMilliCPU: 125, MilliCPU: 250}, check: func(t *testing.T, sp *oci.Spec) {
			if r := sp.Linux.Resources; r.CPU == nil || r.CPU.Shares == nil || *r.CPU.Shares != 128 || *r.CPU.Quota != 25_000 {
				t.Errorf("cpu = %+v, want shares 128 (125m) and quota 25000", r.CPU)
			}
		}},
		{name: "user, group, readonly, escalation", spec: Spec{Security: Security{
			UID: u32(1000), GID: u32(2000), AdditionalGIDs: []uint32{5}, ReadOnlyRootfs: true, AllowPrivilegeEscalation: true}},
			check: func(t *testing.T, sp *oci.Spec) {
				u := sp.Process.User
				if u.UID != 1000 || u.GID != 2000 || !slices.Equal(u.AdditionalGids, []uint32{2000, 5}) {
					t.Errorf("user = %+v", u)
				}
				if !sp.Root.Readonly || sp.Process.NoNewPrivileges {
					t.Errorf("readonly %v nnp %v", sp.Root.Readonly, sp.Process.NoNewPrivileges)
				}
			}},
		{name: "uid of an image user runs with that user's group", spec: Spec{Security: Security{UID: u32(2020)}}, imageUID: 7,
			check: func(t *testing.T, sp *oci.Spec) {
				if u := sp.Process.User; u.UID != 2020 || u.GID != 3030 || !slices.Equal(u.AdditionalGids, []uint32{3030}) {
					t.Errorf("user = %+v, want 2020:3030 from the image's passwd", u)
				}
			}},
		{name: "uid and gid of an image user: gid wins", spec: Spec{Security: Security{UID: u32(2020), GID: u32(4040)}}, imageUID: 7,
			check: func(t *testing.T, sp *oci.Spec) {
				if u := sp.Process.User; u.UID != 2020 || u.GID != 4040 || !slices.Equal(u.AdditionalGids, []uint32{4040}) {
					t.Errorf("user = %+v, want 2020:4040", u)
				}
			}},
		{name: "uid alone runs with gid 0", spec: Spec{Security: Security{UID: u32(1000)}}, imageUID: 7,
			check: func(t *testing.T, sp *oci.Spec) {
				if u := sp.Process.User; u.UID != 1000 || u.GID != 0 || !slices.Equal(u.AdditionalGids, []uint32{0}) {
					t.Errorf("user = %+v", u)
				}
			}},
		{name: "drop ALL, add NET_BIND_SERVICE as non-root", spec: Spec{Security: Security{
			UID: u32(1000), CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}},
			check: func(t *testing.T, sp *oci.Spec) {
				c := sp.Process.Capabilities
				want := []string{"CAP_NET_BIND_SERVICE"}
				if !slices.Equal(c.Bounding, want) || !slices.Equal(c.Effective, want) || !slices.Equal(c.Permitted, want) ||
					!slices.Equal(c.Ambient, want) || !slices.Equal(c.Inheritable, want) {
					t.Errorf("caps = %+v", c)
				}
			}},
		{name: "drop named", spec: Spec{Security: Security{CapDrop: []string{"NET_RAW", "CAP_MKNOD"}}},
			check: func(t *testing.T, sp *oci.Spec) {
				c := sp.Process.Capabilities.Bounding
				if slices.Contains(c, "CAP_NET_RAW") || slices.Contains(c, "CAP_MKNOD") || len(c) != len(DefaultCapabilities)-2 {
					t.Errorf("bounding = %v", c)
				}
			}},
		{name: "seccomp unconfined", spec: Spec{Security: Security{SeccompUnconfined: true}},
			check: func(t *testing.T, sp *oci.Spec) {
				if sp.Linux.Seccomp != nil {
					t.Error("seccomp profile set")
				}
			}},
		{name: "runAsNonRoot with a root image", spec: Spec{Security: Security{RunAsNonRoot: true}}, err: ErrRunAsRoot},
		{name: "runAsNonRoot with runAsUser 0", spec: Spec{Security: Security{RunAsNonRoot: true, UID: u32(0)}}, imageUID: 1000, err: ErrRunAsRoot},
		{name: "runAsNonRoot with a non-root image", spec: Spec{Security: Security{RunAsNonRoot: true}}, imageUID: 65532,
			check: func(t *testing.T, sp *oci.Spec) {
				if sp.Process.User.UID != 65532 {
					t.Errorf("uid = %d", sp.Process.User.UID)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := specFor(t, tc.spec, tc.imageUID)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.check != nil {
				tc.check(t, sp)
			}
		})
	}
}

func TestCPUShares(t *testing.T) {
	for milli, want := range map[int64]uint64{1: 2, 1000: 1024, 125: 128, 2500: 2560} {
		if got := CPUShares(milli); got != want {
			t.Errorf("CPUShares(%d) = %d, want %d", milli, got, want)
		}
	}
}
