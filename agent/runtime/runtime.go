package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// snapshotter is the only one kiln uses: overlayfs ships with the Debian
// containerd and needs no setup.
const snapshotter = "overlayfs"

// Runtime talks to one containerd, in one namespace.
type Runtime struct {
	client    *containerd.Client
	namespace string
	plainHTTP map[string]bool
	log       *slog.Logger
}

// New connects to containerd at address. Images from plainHTTP registries
// (host or host:port), and from localhost and loopback addresses always,
// are pulled over plain HTTP.
func New(address, namespace string, plainHTTP []string, log *slog.Logger) (*Runtime, error) {
	c, err := containerd.New(address, containerd.WithDefaultNamespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("connect containerd at %s: %w", address, err)
	}
	r := &Runtime{client: c, namespace: namespace, plainHTTP: map[string]bool{}, log: log}
	for _, h := range plainHTTP {
		r.plainHTTP[h] = true
	}
	return r, nil
}

// Close closes the connection to containerd; containers keep running.
func (r *Runtime) Close() error { return r.client.Close() }

// Ping checks that containerd answers. Errors: errdefs.ErrUnavailable.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.client.Version(ctx); err != nil {
		return fmt.Errorf("containerd version: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}

func (r *Runtime) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

func (r *Runtime) isPlainHTTP(host string) (bool, error) {
	if r.plainHTTP[host] {
		return true, nil
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if r.plainHTTP[h] || h == "localhost" {
		return true, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil && a.IsLoopback() {
		return true, nil
	}
	return false, nil
}

// Image is a pulled and unpacked image.
type Image struct {
	img containerd.Image
	// Digest is the manifest (or index) digest the reference resolved to.
	Digest string
}

// EnsureImage makes ref available and unpacked. A reference by digest that
// is already present is not pulled again; a tag is always resolved against
// its registry. Errors from the registry are returned wrapped.
func (r *Runtime) EnsureImage(ctx context.Context, ref string) (Image, error) {
	ctx = r.ns(ctx)
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return Image{}, fmt.Errorf("parse image %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	full := named.String()
	if _, byDigest := named.(reference.Digested); byDigest {
		if img, err := r.client.GetImage(ctx, full); err == nil {
			ok, err := img.IsUnpacked(ctx, snapshotter)
			if err == nil && !ok {
				err = img.Unpack(ctx, snapshotter)
				ok = err == nil
			}
			if ok {
				return Image{img: img, Digest: img.Target().Digest.String()}, nil
			}
		}
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(r.isPlainHTTP)),
	})
	img, err := r.client.Pull(ctx, full,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(resolver))
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", full, err)
	}
	return Image{img: img, Digest: img.Target().Digest.String()}, nil
}

// Unpacked reports whether img is still in containerd and unpacked, so a
// remembered image can be used without asking its registry again.
func (r *Runtime) Unpacked(ctx context.Context, img Image) bool {
	if img.img == nil {
		return false
	}
	ctx = r.ns(ctx)
	// The image record (and with it its content) may have been removed.
	if _, err := r.client.GetImage(ctx, img.img.Name()); err != nil {
		return false
	}
	ok, err := img.img.IsUnpacked(ctx, snapshotter)
	return err == nil && ok
}

// Spec is what a container is created from. ID and Image are required.
type Spec struct {
	// ID is the containerd container ID (the instance name).
	ID    string
	Image Image
	// Env is appended to the image's environment; later entries win.
	Env []string
	// Command replaces the image entrypoint; Args replaces its cmd.
	Command, Args []string
	WorkingDir    string
	// NetNSPath is the network namespace to join; empty shares the host's.
	NetNSPath string
	Labels    map[string]string
	// LogPath receives the container's stdout and stderr.
	LogPath string
	// MilliCPU and MemoryMiB are the cgroup limits (resources.limits);
	// 0 means none.
	MilliCPU  int64
	MemoryMiB int64
	// RequestMilliCPU (resources.requests.cpu) weighs the container's CPU
	// share against others' as the kubelet does (cpu.shares =
	// milliCPU*1024/1000, at least 2); 0 keeps the runtime's default.
	RequestMilliCPU int64
	// PidsLimit caps the container's processes and threads; 0 means none.
	PidsLimit int64
	// Security is the container's hardening; the zero value is the
	// default (see Security).
	Security Security
	// Mounts are bind mounts of prepared host directories (volumes).
	Mounts []Mount
}

// Task is a started container process.
type Task struct {
	ID  string
	PID uint32
	// Exited delivers the exit status once, when the task ends or the ctx
	// given to Start/Attach ends (then with an error).
	Exited <-chan containerd.ExitStatus
}

// Start creates the container and starts its task. A leftover container
// with the same ID is removed first. ctx must live as long as the caller
// watches Task.Exited. On error nothing is left behind.
func (r *Runtime) Start(ctx context.Context, s Spec) (_ *Task, retErr error) {
	ctx = r.ns(ctx)
	if _, err := r.client.LoadContainer(ctx, s.ID); err == nil {
		if err := r.Remove(ctx, s.ID, 0); err != nil {
			return nil, fmt.Errorf("remove leftover container %s: %w", s.ID, err)
		}
	}

	opts := []oci.SpecOpts{
		oci.WithImageConfig(s.Image.img),
		oci.WithHostResolvconf,
		oci.WithHostHostsFile,
	}
	switch {
	case len(s.Command) > 0:
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, s.Command...), s.Args...)...))
	case len(s.Args) > 0:
		opts = append(opts, oci.WithImageConfigArgs(s.Image.img, s.Args))
	}
	if s.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(s.WorkingDir))
	}
	opts = append(opts, oci.WithEnv(s.Env))
	if len(s.Mounts) > 0 {
		opts = append(opts, withMounts(s.Mounts))
	}
	if s.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNSPath}))
	} else {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	opts = append(opts, hardening(s)...)

	ctr, err := r.client.NewContainer(ctx, s.ID,
		containerd.WithImage(s.Image.img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(s.ID, s.Image.img),
		containerd.WithNewSpec(opts...),
		containerd.WithContainerLabels(s.Labels))
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", s.ID, err)
	}
	defer func() {
		if retErr != nil {
			_ = r.Remove(context.WithoutCancel(ctx), s.ID, 0)
		}
	}()

	creator := cio.NullIO
	if s.LogPath != "" {
		creator = cio.LogFile(s.LogPath)
	}
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", s.ID, err)
	}
	// Wait before Start, or a fast exit could be missed.
	exited, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait task %s: %w", s.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start task %s: %w", s.ID, err)
	}
	return &Task{ID: s.ID, PID: task.Pid(), Exited: exited}, nil
}

// Attach returns the running task of container id, for re-adoption.
// Errors: errdefs.ErrNotFound when there is no container or no running task.
func (r *Runtime) Attach(ctx context.Context, id string) (*Task, error) {
	ctx = r.ns(ctx)
	ctr, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, mapErr(err))
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("load task %s: %w", id, mapErr(err))
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("task status %s: %w", id, mapErr(err))
	}
	if st.Status != containerd.Running {
		return nil, fmt.Errorf("task %s is %s: %w", id, st.Status, errdefs.ErrNotFound)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait task %s: %w", id, err)
	}
	return &Task{ID: id, PID: task.Pid(), Exited: exited}, nil
}

// Remove stops container id's task (SIGTERM, then SIGKILL after grace) and
// deletes the task, the container and its snapshot. A missing container is
// not an error.
func (r *Runtime) Remove(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ns(ctx)
	ctr, err := r.loadContainer(ctx, id)
	if ctr == nil {
		return err
	}
	if err := stopTaskOf(ctx, ctr, id, grace); err != nil {
		return err
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, mapErr(err))
	}
	return nil
}

// StopTask stops container id's task (SIGTERM, then SIGKILL after grace)
// and deletes it, keeping the container, whose next owner removes or
// restarts it. A container without task, or none at all, is not an error.
func (r *Runtime) StopTask(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ns(ctx)
	ctr, err := r.loadContainer(ctx, id)
	if ctr == nil {
		return err
	}
	return stopTaskOf(ctx, ctr, id, grace)
}

// loadContainer loads container id; nil and no error when there is none.
func (r *Runtime) loadContainer(ctx context.Context, id string) (containerd.Container, error) {
	ctr, err := r.client.LoadContainer(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, mapErr(err))
	}
	return ctr, nil
}

// stopTaskOf stops and deletes ctr's task, if it has one.
func stopTaskOf(ctx context.Context, ctr containerd.Container, id string, grace time.Duration) error {
	task, err := ctr.Task(ctx, nil)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task %s: %w", id, mapErr(err))
	}
	if err := stopTask(ctx, task, grace); err != nil {
		return fmt.Errorf("stop task %s: %w", id, err)
	}
	return nil
}

func stopTask(ctx context.Context, task containerd.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	if err == nil && (st.Status == containerd.Running || st.Status == containerd.Paused) {
		waitCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		exited, err := task.Wait(waitCtx)
		if err != nil {
			return err
		}
		if grace > 0 {
			if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !cerrdefs.IsNotFound(err) {
				return err
			}
			select {
			case <-exited:
			case <-time.After(grace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil &&
			!cerrdefs.IsNotFound(err) && !cerrdefs.IsFailedPrecondition(err) {
			return err
		}
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// Container is one container found in the namespace.
type Container struct {
	ID      string
	Labels  map[string]string
	Running bool
	PID     uint32
	// ImageDigest is the digest of the image the container was made from.
	ImageDigest string
}

// List returns every container in the namespace with its task state.
func (r *Runtime) List(ctx context.Context) ([]Container, error) {
	ctx = r.ns(ctx)
	ctrs, err := r.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", mapErr(err))
	}
	out := make([]Container, 0, len(ctrs))
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("container %s info: %w", ctr.ID(), mapErr(err))
		}
		c := Container{ID: ctr.ID(), Labels: info.Labels}
		if img, err := ctr.Image(ctx); err == nil {
			c.ImageDigest = img.Target().Digest.String()
		}
		if task, err := ctr.Task(ctx, nil); err == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
				c.Running = true
				c.PID = task.Pid()
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func mapErr(err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return errors.Join(err, errdefs.ErrNotFound)
	case cerrdefs.IsUnavailable(err):
		return errors.Join(err, errdefs.ErrUnavailable)
	}
	return err
}
