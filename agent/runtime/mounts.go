package runtime

import (
	"context"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mount bind-mounts a host directory into a container. The agent prepares
// the directory (emptyDir, tmpfs, claim directory); the runtime only binds it.
type Mount struct {
	// Source is the host path; it must exist.
	Source string
	// Destination is the absolute path inside the container.
	Destination string
	ReadOnly    bool
}

// withMounts adds bind mounts. rbind so a tmpfs mounted on the source is
// what the container sees; rprivate so mounts made inside never leak back.
func withMounts(ms []Mount) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		var out []specs.Mount
		for _, m := range ms {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			out = append(out, specs.Mount{Type: "bind", Source: m.Source, Destination: m.Destination,
				Options: []string{"rbind", "rprivate", mode}})
		}
		return oci.WithMounts(out)(ctx, c, ctr, s)
	}
}

// cgroupMount shows the container its own cgroups at /sys/fs/cgroup,
// read-only, as Knative's runtime contract asks and the kubelet does: runc
// mounts the container's cgroup there (on cgroup v1 each controller's,
// read-only, in a tmpfs that holds only their mount points).
// containerd's default spec has none, leaving an empty directory.
var cgroupMount = specs.Mount{
	Destination: "/sys/fs/cgroup",
	Type:        "cgroup",
	Source:      "cgroup",
	Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
}
