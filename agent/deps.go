package agent

import (
	"context"
	"time"

	"github.com/kiln-serving/kiln/agent/network"
	"github.com/kiln-serving/kiln/agent/runtime"
)

// containers is what the agent needs of containerd: *runtime.Runtime in
// production; the unit tests run the agent on an in-memory fake, without
// root or containerd.
type containers interface {
	// Ping fails with errdefs.ErrUnavailable when containerd does not answer.
	Ping(ctx context.Context) error
	// List returns every container in the agent's namespace.
	List(ctx context.Context) ([]runtime.Container, error)
	EnsureImage(ctx context.Context, ref string) (runtime.Image, error)
	Unpacked(ctx context.Context, img runtime.Image) bool
	// Start creates and starts a container; its Task.Exited fires when the
	// task ends or ctx does.
	Start(ctx context.Context, s runtime.Spec) (*runtime.Task, error)
	// Attach fails with errdefs.ErrNotFound without a running task.
	Attach(ctx context.Context, id string) (*runtime.Task, error)
	// Exec runs a command in a container's running task and returns its
	// exit code; ctx bounds it.
	Exec(ctx context.Context, id string, cmd []string) (int, error)
	// Restart replaces a container's task with a new one (kill, then
	// start again in the same container) and sets labels on the
	// container; its Task as Start's.
	Restart(ctx context.Context, id string, grace time.Duration, logPath string, labels map[string]string) (*runtime.Task, error)
	// Remove stops and deletes a container; a missing one is no error.
	Remove(ctx context.Context, id string, grace time.Duration) error
	Close() error
}

// podNetwork gives each instance its network namespace: *network.Network
// (CNI). The agent holds none with HostNetwork.
type podNetwork interface {
	Setup(ctx context.Context, id string) (nsPath, ip string, err error)
	// Admit tells the isolation rules which namespace the instance at ip
	// belongs to (after Setup, or on adopting a running instance).
	Admit(ctx context.Context, id, namespace, ip string) error
	// OpenNamespaces sets the namespaces whose instances may reach each
	// other.
	OpenNamespaces(ctx context.Context, namespaces []string) error
	Teardown(ctx context.Context, id, nsPath string) error
	// RemoveIsolation removes the isolation rules (only when no instance
	// is left to protect).
	RemoveIsolation(ctx context.Context) error
}

var (
	_ containers = (*runtime.Runtime)(nil)
	_ podNetwork = (*network.Network)(nil)
)
