package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kiln-serving/kiln/agent/queue"
)

// queueProxy is the handle of one instance's queue-proxy: in the agent's
// process (inProcQueue, without Config.QueueCommand) or a kilnd queue
// process of its own that outlives the agent (procQueue).
type queueProxy interface {
	// SetReady flips the readiness the proxy's probe answers.
	SetReady(ready bool)
	// Report closes the proxy's reporting period at now.
	Report(ctx context.Context, now time.Time) (queue.Report, error)
	// Stats is the proxy's counters (as of the last heartbeat for a
	// process); false when unknown.
	Stats() (queue.Stats, bool)
	// Drain drains the proxy (queue.Proxy.Drain) and returns once it has
	// stopped.
	Drain(ctx context.Context) error
	// Close stops the proxy at once.
	Close() error
	// Detach lets go of the proxy as the agent exits: an in-process one
	// stops, a process keeps serving for the next agent to adopt.
	Detach()
	// Gone is closed when the proxy stopped on its own (a process that
	// exited or stopped answering); nil when it cannot.
	Gone() <-chan struct{}
}

// queueRef holds a queueProxy for atomic.Pointer.
type queueRef struct{ q queueProxy }

// queueConfig is the queue-proxy of the worker's placement on target.
func (w *worker) queueConfig() queue.Config {
	spec := w.p.Spec
	return queue.Config{
		Target:               w.target,
		ContainerConcurrency: spec.ContainerConcurrency,
		Timeout:              w.requestTimeout(),
		ResponseStart:        time.Duration(spec.ResponseStartTimeoutSeconds) * time.Second,
		Idle:                 time.Duration(spec.IdleTimeoutSeconds) * time.Second,
		H2C:                  spec.PortName == "h2c",
		DrainDelay:           max(w.a.cfg.DrainDelay, 0),
		TLS:                  w.a.cfg.QueueTLS,
		Check:                QueueCallers,
	}
}

// requestTimeout is the revision's timeout (Knative's default when unset).
func (w *worker) requestTimeout() time.Duration {
	if t := time.Duration(w.p.Spec.TimeoutSeconds) * time.Second; t > 0 {
		return t
	}
	return defaultTimeout
}

// --- in the agent's process ---

type inProcQueue struct {
	p       *queue.Proxy
	serving sync.WaitGroup
}

var _ queueProxy = (*inProcQueue)(nil)

func startInProcQueue(cfg queue.Config, ln net.Listener, log *slog.Logger) (*inProcQueue, error) {
	p, err := queue.New(cfg, log)
	if err != nil {
		return nil, err
	}
	q := &inProcQueue{p: p}
	q.serving.Go(func() {
		if err := p.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("queue-proxy stopped serving", "error", err)
		}
	})
	return q, nil
}

func (q *inProcQueue) SetReady(ready bool) { q.p.SetReady(ready) }
func (q *inProcQueue) Report(_ context.Context, now time.Time) (queue.Report, error) {
	return queue.Report{Report: q.p.Report(now), Created: q.p.Created()}, nil
}
func (q *inProcQueue) Stats() (queue.Stats, bool) { return q.p.Stats(), true }
func (q *inProcQueue) Drain(ctx context.Context) error {
	err := q.p.Drain(ctx)
	q.serving.Wait()
	return err
}
func (q *inProcQueue) Close() error {
	err := q.p.Close()
	q.serving.Wait()
	return err
}
func (q *inProcQueue) Detach()               { _ = q.Close() }
func (q *inProcQueue) Gone() <-chan struct{} { return nil }

// --- a kilnd queue process ---

const (
	// heartbeatInterval is how often the agent calls every queue-proxy
	// process; each call holds off its fencing.
	heartbeatInterval = time.Second
	// heartbeatFailures in a row make an adopted process (which the
	// agent cannot wait for) count as gone.
	heartbeatFailures = 3
	// controlTimeout bounds one control call but a drain.
	controlTimeout = 2 * time.Second
	// queueStartTimeout bounds a new process's wait for its control
	// socket; queueExitTimeout the wait for a stopped one to exit.
	queueStartTimeout = 10 * time.Second
	queueExitTimeout  = 5 * time.Second
)

// procQueue is a kilnd queue process the agent started or adopted.
type procQueue struct {
	log *slog.Logger
	ctl *queue.ControlClient
	pid int
	// exited is closed when the process started by this agent has been
	// reaped; nil for an adopted one.
	exited chan struct{}
	gone   chan struct{}
	goneMu sync.Once
	ready  atomic.Bool // wanted
	stats  atomic.Pointer[queue.Stats]
	// stopBeat ends the heartbeat; beating joins it.
	stopBeat context.CancelFunc
	beating  sync.WaitGroup
}

var _ queueProxy = (*procQueue)(nil)

// controlSocket is where the queue-proxy of instance name listens for its
// agent: STATE/queue/<name>.sock, with name hashed as container IDs are
// when long, so the path stays short.
func (a *Agent) controlSocket(name string) string {
	return filepath.Join(a.cfg.StateDir, "queue", containerID(name)+".sock")
}

// startProcQueue starts kilnd queue for the worker's instance, serving on
// ln (handed over as a file descriptor, so the port stays the pool's
// without a race), and waits until its control API answers. ln is closed
// in the agent either way.
func (w *worker) startProcQueue(ln net.Listener) (*procQueue, error) {
	a := w.a
	defer ln.Close()
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("queue listener is a %T, not TCP", ln)
	}
	lf, err := tl.File()
	if err != nil {
		return nil, fmt.Errorf("queue listener: %w", err)
	}
	defer lf.Close()
	// STATE/logs/queue-proxy/<instance>.log: beside the containers' logs
	// but out of the node API's reach, and no sidecar's name can meet it.
	logDir := filepath.Join(a.cfg.StateDir, "logs", "queue-proxy")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, fmt.Errorf("queue-proxy log: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(logDir, w.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue-proxy log: %w", err)
	}
	defer logf.Close()
	sock := a.controlSocket(w.name)
	cfg := w.queueConfig()
	args := append([]string{}, a.cfg.QueueCommand[1:]...)
	args = append(args,
		"--instance", w.name,
		"--target", cfg.Target,
		"--container-concurrency", strconv.FormatInt(cfg.ContainerConcurrency, 10),
		"--timeout", cfg.Timeout.String(),
		"--response-start-timeout", cfg.ResponseStart.String(),
		"--idle-timeout", cfg.Idle.String(),
		"--drain-delay", cfg.DrainDelay.String(),
		"--control-socket", sock,
		"--fence-timeout", a.cfg.QueueFenceTimeout.String(),
		"--listen-fd", "3",
		// Fenced, it stops the instance's containers too.
		"--containerd-address", a.cfg.ContainerdAddress,
		"--containerd-namespace", a.cfg.Namespace,
	)
	if cfg.H2C {
		args = append(args, "--h2c")
	}
	if f := a.cfg.QueueTLSFiles; f.Cert != "" {
		args = append(args, "--tls-ca-file", f.CA, "--tls-cert-file", f.Cert, "--tls-key-file", f.Key)
	}
	cmd := exec.Command(a.cfg.QueueCommand[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{lf}
	// A session of its own: a signal to the agent's process group (a
	// terminal's ^C, a service manager's stop) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start queue-proxy: %w", err)
	}
	q := newProcQueue(w.log, queue.NewControlClient(sock), cmd.Process.Pid, make(chan struct{}))
	go func() {
		err := cmd.Wait()
		q.log.Info("queue-proxy process exited", "pid", q.pid, "status", err)
		close(q.exited)
		q.markGone()
	}()
	deadline := time.Now().Add(queueStartTimeout)
	for {
		st, err := stateOf(q.ctl)
		if err == nil && st.PID == q.pid {
			break
		}
		select {
		case <-q.exited:
			return nil, fmt.Errorf("queue-proxy exited at start (see %s)", logf.Name())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("queue-proxy control socket not answering after %s: %v", queueStartTimeout, err)
		}
	}
	w.log.Info("queue-proxy process started", "pid", q.pid, "control_socket", sock)
	q.beat()
	return q, nil
}

// stateOf asks the queue-proxy process at ctl for its state, waiting at
// most controlTimeout.
func stateOf(ctl *queue.ControlClient) (queue.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	return ctl.State(ctx)
}

func newProcQueue(log *slog.Logger, ctl *queue.ControlClient, pid int, exited chan struct{}) *procQueue {
	return &procQueue{log: log, ctl: ctl, pid: pid, exited: exited, gone: make(chan struct{})}
}

// adoptProcQueue takes over the queue-proxy process a previous agent left
// for the worker's instance, if one answers on its control socket serving
// target on port. Otherwise it stops whatever answers there and returns
// nil.
func (w *worker) adoptProcQueue(port int) *procQueue {
	ctl := queue.NewControlClient(w.a.controlSocket(w.name))
	st, err := stateOf(ctl)
	if err != nil {
		ctl.CloseIdle()
		return nil
	}
	if st.Instance != w.name || st.Target != w.target || st.Port != port || st.Draining {
		w.log.Info("queue-proxy process left by the previous agent does not fit, replacing it",
			"pid", st.PID, "target", st.Target, "want_target", w.target, "port", st.Port, "want_port", port, "draining", st.Draining)
		stopProc(ctl, st.PID, nil)
		return nil
	}
	q := newProcQueue(w.log, ctl, st.PID, nil)
	q.ready.Store(st.Ready)
	q.stats.Store(&st.Stats)
	q.beat()
	w.log.Info("queue-proxy process adopted", "pid", st.PID, "ready", st.Ready)
	return q
}

// beat calls the process every heartbeatInterval until stopped: it holds
// off the fencing, keeps the counters fresh and puts back a readiness the
// process lost (a SetReady that failed).
func (q *procQueue) beat() {
	ctx, cancel := context.WithCancel(context.Background())
	q.stopBeat = cancel
	q.beating.Go(func() {
		t := time.NewTicker(heartbeatInterval)
		defer t.Stop()
		fails := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-q.gone:
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, controlTimeout)
			st, err := q.ctl.State(cctx)
			if err == nil && st.Ready != q.ready.Load() && !st.Draining {
				err = q.ctl.SetReady(cctx, q.ready.Load())
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fails++
				q.log.Warn("queue-proxy heartbeat failed", "pid", q.pid, "failures", fails, "error", err)
				if q.exited == nil && fails >= heartbeatFailures {
					q.markGone()
				}
				continue
			}
			fails = 0
			q.stats.Store(&st.Stats)
		}
	})
}

func (q *procQueue) markGone() { q.goneMu.Do(func() { close(q.gone) }) }

func (q *procQueue) endBeat() {
	if q.stopBeat != nil {
		q.stopBeat()
	}
	q.beating.Wait()
}

func (q *procQueue) SetReady(ready bool) {
	q.ready.Store(ready)
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	if err := q.ctl.SetReady(ctx, ready); err != nil {
		q.log.Warn("set queue-proxy readiness; the heartbeat retries", "ready", ready, "error", err)
	}
}

func (q *procQueue) Report(ctx context.Context, _ time.Time) (queue.Report, error) {
	return q.ctl.Report(ctx)
}

func (q *procQueue) Stats() (queue.Stats, bool) {
	if s := q.stats.Load(); s != nil {
		return *s, true
	}
	return queue.Stats{}, false
}

func (q *procQueue) Gone() <-chan struct{} { return q.gone }

func (q *procQueue) Drain(ctx context.Context) error {
	q.endBeat()
	err := q.ctl.Drain(ctx)
	if err != nil {
		err = fmt.Errorf("drain queue-proxy: %w", err)
	}
	q.waitExit()
	return err
}

func (q *procQueue) Close() error {
	q.endBeat()
	stopProc(q.ctl, q.pid, q.exited)
	return nil
}

func (q *procQueue) Detach() {
	q.endBeat()
	q.ctl.CloseIdle()
}

// waitExit waits for the process to exit after a drain or stop, and kills
// it if it does not.
func (q *procQueue) waitExit() {
	if !waitProcExit(q.ctl, q.pid, q.exited) {
		q.log.Warn("queue-proxy process did not exit, killing it", "pid", q.pid)
		_ = syscall.Kill(q.pid, syscall.SIGKILL)
	}
	q.ctl.CloseIdle()
}

// stopProc tells the queue-proxy process at ctl to stop and waits for it
// to exit; one that does not is killed. exited is closed when the
// process, a child of this agent, has been reaped; nil for one it adopted.
func stopProc(ctl *queue.ControlClient, pid int, exited chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	_ = ctl.Stop(ctx)
	cancel()
	if !waitProcExit(ctl, pid, exited) && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	ctl.CloseIdle()
}

// waitProcExit waits up to queueExitTimeout for the process to exit: its
// reaping when it is the agent's child, else until its control socket
// stops answering as pid.
func waitProcExit(ctl *queue.ControlClient, pid int, exited chan struct{}) bool {
	deadline := time.After(queueExitTimeout)
	if exited != nil {
		select {
		case <-exited:
			return true
		case <-deadline:
			return false
		}
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		st, err := ctl.State(ctx)
		cancel()
		ctl.CloseIdle()
		if err != nil || st.PID != pid {
			return true
		}
		select {
		case <-deadline:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopStrayQueues stops every queue-proxy process an earlier agent left
// whose instance has no container any more (live: the instances with
// one), and removes control sockets nobody answers on.
func (a *Agent) stopStrayQueues(live map[string]bool) {
	socks, _ := filepath.Glob(filepath.Join(a.cfg.StateDir, "queue", "*.sock"))
	for _, sock := range socks {
		ctl := queue.NewControlClient(sock)
		st, err := stateOf(ctl)
		switch {
		case err != nil:
			a.log.Info("removing stale queue-proxy control socket", "socket", sock)
			_ = os.Remove(sock)
		case !live[st.Instance]:
			a.log.Info("stopping queue-proxy process of an instance without container", "instance", st.Instance, "pid", st.PID)
			stopProc(ctl, st.PID, nil)
			_ = os.Remove(sock)
		}
		ctl.CloseIdle()
	}
}

// stopQueueOf stops the queue-proxy process of instance name, if any
// answers (an orphan container's).
func (a *Agent) stopQueueOf(name string) {
	ctl := queue.NewControlClient(a.controlSocket(name))
	st, err := stateOf(ctl)
	if err == nil && st.Instance == name {
		a.log.Info("stopping queue-proxy process of a removed container", "instance", name, "pid", st.PID)
		stopProc(ctl, st.PID, nil)
	}
	ctl.CloseIdle()
}
