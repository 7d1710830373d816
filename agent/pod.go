package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// An instance is one pod: the serving container (containerd ID from the
// instance name), its sidecars (from <instance>.<name>) and its init
// containers (from <instance>.init.<name>; instance names have no "."),
// each made a valid containerd ID by containerID, all in the instance's network
// namespace and sharing its volumes. Only the serving container carries the
// instance labels the agent adopts by; the others carry labelPod so a
// restarted agent leaves them to the instance's worker instead of removing
// them as orphans.

// labelPod names the instance a sidecar or init container belongs to.
const labelPod = "kiln.dev/pod"

func sidecarID(instance, name string) string { return containerID(instance + "." + name) }
func initID(instance, name string) string    { return containerID(instance + ".init." + name) }

// sidecarExit is a sidecar's task ending.
type sidecarExit struct {
	name string
	code uint32
}

// pullError is an image that could not be pulled, worded as Knative's
// revision reconciler reports it (ContainerMissing).
type pullError struct {
	ref string
	err error
}

func (e *pullError) Error() string {
	return "Unable to fetch image " + strconv.Quote(e.ref) + ": " + e.err.Error()
}

func (e *pullError) Unwrap() error { return e.err }

// pullAll makes every image of the instance available, serving image
// first. It returns the pulled images by reference.
func (w *worker) pullAll(ctx context.Context) (map[string]runtime.Image, error) {
	spec := w.p.Spec
	imgs := map[string]runtime.Image{}
	refs := []string{spec.Image}
	for _, c := range slices.Concat(spec.InitContainers, spec.Sidecars) {
		refs = append(refs, c.Image)
	}
	for _, ref := range refs {
		if _, ok := imgs[ref]; ok {
			continue
		}
		img, err := w.a.ensureImage(ctx, spec.Namespace, spec.Revision, ref)
		if err != nil {
			return nil, &pullError{ref: ref, err: err}
		}
		imgs[ref] = img
	}
	return imgs, nil
}

// podSpec is a sidecar's or init container's spec; its environment is
// only what the user declared (resolveEnvs), as Knative gives it (PORT and
// K_* are the serving container's).
func (w *worker) podSpec(id string, c cluster.ContainerSpec, img runtime.Image, mounts []runtime.Mount) runtime.Spec {
	spec := w.p.Spec
	return runtime.Spec{
		ID: id, Image: img, Env: w.env[c.Name], Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir,
		NetNSPath: w.netnsPath, LogPath: filepath.Join(w.a.cfg.StateDir, "logs", id+".log"),
		MilliCPU: c.LimitMilliCPU, MemoryMiB: c.LimitMemoryMiB, RequestMilliCPU: c.MilliCPU, Mounts: mounts,
		PidsLimit: max(w.a.cfg.PidsLimit, 0), Security: runtimeSecurity(c.Security),
		Labels: map[string]string{
			labelPod:       w.name,
			labelNamespace: spec.Namespace,
			labelRevision:  spec.Revision,
			labelContainer: c.Name,
		},
	}
}

// labelContainer names the container within its instance.
const labelContainer = "kiln.dev/container"

// runInitContainers runs each init container to completion, in order; the
// first that cannot start or exits non-zero fails the incarnation with
// reason InitContainerFailed and says which one and why.
func (w *worker) runInitContainers(ctx context.Context, imgs map[string]runtime.Image, vols map[string]hostVolume) error {
	for i, c := range w.p.Spec.InitContainers {
		id := initID(w.name, c.Name)
		mounts, err := containerMounts(vols, c.Mounts, filepath.Join(w.a.subPathRoot(w.name), id))
		if err != nil {
			return w.fail(ctx, "InitContainerFailed", fmt.Errorf("init container %q: %w", c.Name, err))
		}
		w.setPhase(ctx, cluster.PhaseStarting, "", fmt.Sprintf("running init container %d/%d %q", i+1, len(w.p.Spec.InitContainers), c.Name))
		task, err := w.a.rt.Start(ctx, w.podSpec(id, c, imgs[c.Image], mounts))
		if err != nil {
			return w.fail(ctx, startFailure(err, "InitContainerFailed"), fmt.Errorf("init container %q: %w", c.Name, err))
		}
		var st = <-task.Exited
		if ctx.Err() != nil {
			return ctx.Err()
		}
		code, _, exitErr := st.Result()
		if rerr := w.a.rt.Remove(context.WithoutCancel(ctx), id, 0); rerr != nil {
			w.log.Warn("remove finished init container", "container", c.Name, "error", rerr)
		}
		switch {
		case exitErr != nil:
			return w.fail(ctx, "InitContainerFailed", fmt.Errorf("init container %q: %w", c.Name, exitErr))
		case code != 0:
			return w.fail(ctx, "InitContainerFailed", fmt.Errorf("init container %q exited with code %d", c.Name, code))
		}
		w.log.Info("init container completed", "container", c.Name)
	}
	return nil
}

// startSidecars starts the non-serving containers next to the serving one.
func (w *worker) startSidecars(ctx context.Context, imgs map[string]runtime.Image, vols map[string]hostVolume) error {
	for _, c := range w.p.Spec.Sidecars {
		id := sidecarID(w.name, c.Name)
		mounts, err := containerMounts(vols, c.Mounts, filepath.Join(w.a.subPathRoot(w.name), id))
		if err != nil {
			return w.fail(ctx, "ContainerCreateFailed", fmt.Errorf("container %q: %w", c.Name, err))
		}
		task, err := w.a.rt.Start(ctx, w.podSpec(id, c, imgs[c.Image], mounts))
		if err != nil {
			return w.fail(ctx, startFailure(err, "ContainerCreateFailed"), fmt.Errorf("container %q: %w", c.Name, err))
		}
		w.watchSidecar(c.Name, task)
	}
	return nil
}

// attachSidecars re-adopts the sidecars of an adopted instance; a missing
// one makes the adoption fail, and the instance is recreated whole.
func (w *worker) attachSidecars(ctx context.Context) error {
	for _, c := range w.p.Spec.Sidecars {
		task, err := w.a.rt.Attach(ctx, sidecarID(w.name, c.Name))
		if err != nil {
			return fmt.Errorf("sidecar %q: %w", c.Name, err)
		}
		w.watchSidecar(c.Name, task)
	}
	return nil
}

// watchSidecar reports the task's end on w.sideExit. A sidecar that exits
// fails the incarnation, like the serving container: the instance is
// recreated whole, with fresh emptyDir volumes.
func (w *worker) watchSidecar(name string, task *runtime.Task) {
	if w.sideExit == nil {
		w.sideExit = make(chan sidecarExit, len(w.p.Spec.Sidecars))
	}
	ch := w.sideExit
	w.waiters.Go(func() {
		st := <-task.Exited
		ch <- sidecarExit{name: name, code: st.ExitCode()}
	})
}

// removePod removes the sidecars and any init container left running by
// an interrupted start, then the instance's emptyDir volumes. Called after
// the serving container is gone.
func (w *worker) removePod(ctx context.Context) {
	spec := w.p.Spec
	for _, c := range spec.Sidecars {
		if err := w.a.rt.Remove(ctx, sidecarID(w.name, c.Name), stopGrace); err != nil {
			w.log.Error("remove sidecar", "container", c.Name, "error", err)
		}
	}
	for _, c := range spec.InitContainers {
		if err := w.a.rt.Remove(ctx, initID(w.name, c.Name), 0); err != nil {
			w.log.Error("remove init container", "container", c.Name, "error", err)
		}
	}
	if err := w.a.removeVolumes(w.name); err != nil {
		w.log.Error("remove emptyDir volumes", "error", err)
	}
	w.sideExit = nil
}

// exitMessage renders a sidecar's end for the instance record.
func (e sidecarExit) String() string {
	return "container " + strconv.Quote(e.name) + " exited with code " + strconv.FormatUint(uint64(e.code), 10)
}

// recordDigests puts on the instance record the digest every container's
// image resolved to, pinned to its repository (REPO@sha256:…), as Knative
// reports them in the Revision's containerStatuses.
func (w *worker) recordDigests(imgs map[string]runtime.Image) {
	spec := w.p.Spec
	w.rec.ImageDigest = pinnedImage(spec.Image, imgs[spec.Image].Digest)
	digests := map[string]string{}
	if spec.ContainerName != "" {
		digests[spec.ContainerName] = w.rec.ImageDigest
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Sidecars) {
		digests[c.Name] = pinnedImage(c.Image, imgs[c.Image].Digest)
	}
	w.rec.ContainerDigests = digests
}

// pinnedImage is image pinned to digest (cluster.DigestReference), or the
// bare digest when the two cannot be joined (not expected: the image was
// parsed to be pulled).
func pinnedImage(image, digest string) string {
	if digest == "" {
		return ""
	}
	ref, err := cluster.DigestReference(image, digest)
	if err != nil {
		return digest
	}
	return ref
}
