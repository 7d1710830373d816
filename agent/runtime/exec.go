package runtime

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	cerrdefs "github.com/containerd/errdefs"
)

// execSeq makes exec IDs unique within this agent's life; containerd
// wants them unique per task.
var execSeq atomic.Uint64

// Exec runs cmd inside container id's running task, with the container's
// own user, environment and working directory (as kubelet's exec probes
// do), and returns its exit code. Its output is discarded. ctx bounds it:
// a command still running when ctx ends is killed and ctx's error is
// returned. Errors: errdefs.ErrNotFound without a running task.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	if len(cmd) == 0 {
		return 0, fmt.Errorf("exec in %s: empty command", id)
	}
	ctx = r.ns(ctx)
	ctr, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("load container %s: %w", id, mapErr(err))
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("container spec %s: %w", id, mapErr(err))
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("load task %s: %w", id, mapErr(err))
	}
	ps := *spec.Process
	ps.Args = cmd
	ps.Terminal = false
	execID := "exec-" + strconv.FormatUint(execSeq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// The process must be cleaned up even when ctx has ended.
	bg := context.WithoutCancel(ctx)
	p, err := task.Exec(ctx, execID, &ps, cio.NullIO)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, mapErr(err))
	}
	defer func() { _, _ = p.Delete(bg, containerd.WithProcessKill) }()
	statusC, err := p.Wait(bg)
	if err != nil {
		return 0, fmt.Errorf("wait exec in %s: %w", id, err)
	}
	if err := p.Start(ctx); err != nil {
		return 0, fmt.Errorf("start exec in %s: %w", id, mapErr(err))
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		if err != nil {
			return 0, fmt.Errorf("exec in %s: %w", id, err)
		}
		return int(code), nil
	case <-ctx.Done():
		if err := p.Kill(bg, syscall.SIGKILL); err != nil && !cerrdefs.IsNotFound(err) {
			r.log.Warn("kill timed-out exec", "container", id, "error", err)
		}
		<-statusC
		return 0, ctx.Err()
	}
}

// Restart kills container id's task (SIGTERM, then SIGKILL after grace)
// and starts a new one in the same container: same rootfs, mounts and
// network namespace, as a kubelet restarts a container of a pod. The new
// task's output is appended to logPath (none when empty) and labels are
// set on the container (added or replaced) once it runs. Its Exited fires
// when it ends or ctx does, as Start's. Errors: errdefs.ErrNotFound
// without the container.
func (r *Runtime) Restart(ctx context.Context, id string, grace time.Duration, logPath string, labels map[string]string) (*Task, error) {
	ctx = r.ns(ctx)
	ctr, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, mapErr(err))
	}
	if old, err := ctr.Task(ctx, nil); err == nil {
		if err := stopTask(ctx, old, grace); err != nil {
			return nil, fmt.Errorf("stop task %s: %w", id, err)
		}
	} else if !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("load task %s: %w", id, mapErr(err))
	}
	creator := cio.NullIO
	if logPath != "" {
		creator = cio.LogFile(logPath)
	}
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", id, err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		return nil, fmt.Errorf("wait task %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		return nil, fmt.Errorf("start task %s: %w", id, err)
	}
	if len(labels) > 0 {
		if _, err := ctr.SetLabels(ctx, labels); err != nil {
			r.log.Warn("label restarted container", "container", id, "error", err)
		}
	}
	return &Task{ID: id, PID: task.Pid(), Exited: exited}, nil
}
