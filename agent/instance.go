package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/internal/cluster"
)

const (
	// startTimeout bounds pull-to-ready of one incarnation.
	startTimeout = 60 * time.Second
	// startProbeInterval is short because cold starts wait on it.
	startProbeInterval = 5 * time.Millisecond
	// probeInterval is how often a running instance's readiness is
	// probed when its probe sets no periodSeconds.
	probeInterval = time.Second
	// stopGrace is how long an app gets between SIGTERM and SIGKILL.
	stopGrace = 10 * time.Second
	// defaultTimeout is Knative's default revision timeout.
	defaultTimeout = 300 * time.Second
	defaultPort    = 8080
)

// worker owns one placed instance: one goroutine runs it from placement to
// removal, recreating the container if it dies. Fields below the line are
// touched only by that goroutine.
type worker struct {
	a    *Agent
	name string
	p    cluster.Placement
	log  *slog.Logger
	// cancel ends the ctx run was given: the worker's lifetime.
	cancel context.CancelFunc
	done   chan struct{}
	// stop decides what happens when ctx ends: tear the instance down
	// (placement removed, or StopOnExit) or leave the container running
	// for the next agent to adopt.
	stop atomic.Bool
	// fenced (with stop) tears the instance down at once, without
	// draining or writing records: the node lease and its records are
	// gone.
	fenced   atomic.Bool
	proxyRef atomic.Pointer[queueRef]
	removed  bool // guarded by a.mu

	// ---- owned by the worker goroutine ----
	adopt     *runtime.Container
	rec       cluster.Instance
	queueLn   net.Listener
	queuePort int
	appPort   int
	hostPort  bool // appPort came from the pool
	netnsPath string
	ip        string
	target    string
	proxy     queueProxy
	task      *runtime.Task
	// taskStarted is when task started (or was adopted): liveness's
	// initialDelaySeconds counts from it.
	taskStarted time.Time
	// restartDelay and lastRestart pace in-place restarts.
	restartDelay time.Duration
	lastRestart  time.Time
	sideExit     chan sidecarExit    // sidecars' ends (pod.go); nil without sidecars
	env          map[string][]string // user env by container name (resolveEnvs)
	// waiters joins the sidecar watchers (pod.go), which end with their
	// task or with run's ctx.
	waiters sync.WaitGroup
}

// newWorker returns the worker of one placement; cancel ends the ctx its
// run is given.
func (a *Agent) newWorker(name string, p cluster.Placement, adopt *runtime.Container, cancel context.CancelFunc) *worker {
	return &worker{
		a:      a,
		name:   name,
		p:      p,
		log:    a.log.With("instance", name, "revision", p.Spec.Revision, "namespace", p.Spec.Namespace),
		cancel: cancel,
		done:   make(chan struct{}),
		adopt:  adopt,
		rec: cluster.Instance{
			Instance:  name,
			Node:      a.cfg.NodeName,
			Namespace: p.Spec.Namespace,
			Revision:  p.Spec.Revision,
		},
	}
}

// errFailed marks an error already recorded as phase Failed.
var errFailed = errors.New("instance failed")

// run runs the instance until ctx ends, then stops it or leaves it for the
// next agent (see stop). Everything it started has ended when it returns.
func (w *worker) run(ctx context.Context) {
	defer w.waiters.Wait()
	if err := validatePlacement(w.name, w.p); err != nil {
		w.refuse(ctx, err)
		return
	}
	if w.adopt == nil {
		w.setPhase(ctx, cluster.PhasePending, "", "")
	}
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
		err := w.incarnate(ctx)
		if ctx.Err() != nil {
			break
		}
		w.log.Warn("instance incarnation ended, retrying", "error", err, "backoff", backoff)
		w.teardown(ctx, false)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if ctx.Err() != nil {
			break
		}
	}
	bg := context.WithoutCancel(ctx)
	if !w.stop.Load() {
		// Agent exit: the container keeps running; only our proxy goes.
		w.detach()
		return
	}
	start := time.Now()
	if w.fenced.Load() {
		w.teardown(bg, false)
		w.log.Warn("instance fenced: stopped", "stop_ms", time.Since(start).Milliseconds())
		return
	}
	w.rec.Ready = false
	w.setPhase(bg, cluster.PhaseStopping, "", "")
	w.teardown(bg, true)
	if err := w.a.deleteRecord(bg, w.name); err != nil {
		w.log.Error("delete instance record", "error", err)
	}
	w.log.Info("instance stopped", "stop_ms", time.Since(start).Milliseconds())
}

// refuse fails an instance whose placement is invalid and holds it failed
// until the placement goes. Nothing is created for it; only a container an
// earlier agent left under a valid name is removed, and nothing is touched
// on disk under a name that is not one.
func (w *worker) refuse(ctx context.Context, err error) {
	_ = w.fail(ctx, reasonInvalidPlacement, err)
	<-ctx.Done()
	bg := context.WithoutCancel(ctx)
	if !w.stop.Load() {
		return
	}
	if w.adopt != nil && validName(w.name) {
		w.teardown(bg, false)
	}
	if err := w.a.deleteRecord(bg, w.name); err != nil {
		w.log.Error("delete instance record", "error", err)
	}
}

// incarnate brings up (or adopts) the container and watches it until ctx
// ends (nil) or it fails (error, already recorded).
func (w *worker) incarnate(ctx context.Context) error {
	if c := w.adopt; c != nil {
		w.adopt = nil
		err := w.adoptContainer(ctx, c)
		if err == nil {
			return w.monitor(ctx)
		}
		if ctx.Err() != nil {
			return err
		}
		w.log.Info("cannot adopt container, recreating", "reason", err)
		w.teardown(ctx, false)
	}
	if err := w.create(ctx); err != nil {
		return err
	}
	return w.monitor(ctx)
}

func (w *worker) create(ctx context.Context) error {
	spec := w.p.Spec
	a := w.a
	t0 := time.Now()
	w.setPhase(ctx, cluster.PhasePulling, "", "")
	imgs, err := w.pullAll(ctx)
	if err != nil {
		return w.fail(ctx, "ImagePullFailed", err)
	}
	img := imgs[spec.Image]
	w.recordDigests(imgs)
	tPulled := time.Now()
	w.setPhase(ctx, cluster.PhaseStarting, "", "")

	w.queueLn, w.queuePort, err = a.ports.listen(a.cfg.Address)
	if err != nil {
		return w.fail(ctx, "PortAllocationFailed", err)
	}
	if a.net == nil {
		w.appPort, err = a.ports.reserve()
		if err != nil {
			return w.fail(ctx, "PortAllocationFailed", err)
		}
		w.hostPort = true
		w.target = net.JoinHostPort("127.0.0.1", strconv.Itoa(w.appPort))
	} else {
		w.netnsPath, w.ip, err = a.net.Setup(ctx, w.name)
		if err != nil {
			return w.fail(ctx, "NetworkSetupFailed", err)
		}
		if err := a.net.Admit(ctx, w.name, spec.Namespace, w.ip); err != nil {
			return w.fail(ctx, "NetworkSetupFailed", err)
		}
		w.appPort = int(spec.Port)
		if w.appPort == 0 {
			w.appPort = defaultPort
		}
		w.target = net.JoinHostPort(w.ip, strconv.Itoa(w.appPort))
	}
	tNet := time.Now()
	objs := newObjectCache(a.objs, spec.Namespace)
	vols, err := a.prepareVolumes(ctx, w.name, spec, objs)
	if err != nil {
		return w.fail(ctx, configFailure(err, "VolumeSetupFailed"), err)
	}
	if err := w.resolveEnvs(ctx, objs); err != nil {
		return w.fail(ctx, reasonConfigError, err)
	}
	mounts, err := containerMounts(vols, spec.Mounts, filepath.Join(a.subPathRoot(w.name), w.name))
	if err != nil {
		return w.fail(ctx, "VolumeSetupFailed", err)
	}
	if err := w.runInitContainers(ctx, imgs, vols); err != nil {
		return err
	}

	w.task, err = a.rt.Start(ctx, runtime.Spec{
		ID:              containerID(w.name),
		Image:           img,
		Env:             containerEnv(spec, w.appPort, w.env[spec.ContainerName]),
		Command:         spec.Command,
		Args:            spec.Args,
		WorkingDir:      spec.WorkingDir,
		NetNSPath:       w.netnsPath,
		LogPath:         filepath.Join(a.cfg.StateDir, "logs", w.name+".log"),
		MilliCPU:        spec.LimitMilliCPU,
		MemoryMiB:       spec.LimitMemoryMiB,
		RequestMilliCPU: spec.MilliCPU,
		PidsLimit:       max(a.cfg.PidsLimit, 0),
		Security:        runtimeSecurity(spec.Security),
		Mounts:          mounts,
		Labels: map[string]string{
			labelInstance:  w.name,
			labelNamespace: spec.Namespace,
			labelRevision:  spec.Revision,
			labelPort:      strconv.Itoa(w.appPort),
			labelQueuePort: strconv.Itoa(w.queuePort),
			labelNetNS:     w.netnsPath,
			labelIP:        w.ip,
		},
	})
	if err != nil {
		return w.fail(ctx, startFailure(err, "ContainerCreateFailed"), err)
	}
	w.taskStarted = time.Now()
	if err := w.startSidecars(ctx, imgs, vols); err != nil {
		return err
	}
	tStarted := time.Now()
	if err := w.startProxy(); err != nil {
		return w.fail(ctx, "QueueProxyFailed", err)
	}
	if err := w.waitReady(ctx); err != nil {
		return err
	}
	w.log.Info("instance running",
		"pull_ms", tPulled.Sub(t0).Milliseconds(),
		"network_ms", tNet.Sub(tPulled).Milliseconds(),
		"create_start_ms", tStarted.Sub(tNet).Milliseconds(),
		"ready_after_start_ms", time.Since(tStarted).Milliseconds(),
		"total_ms", time.Since(t0).Milliseconds(),
		"endpoint", w.rec.Endpoint, "pid", w.task.PID, "image_digest", w.rec.ImageDigest)
	return nil
}

// adoptContainer takes over a container a previous agent started: same
// queue port, no restart, readiness probed again.
func (w *worker) adoptContainer(ctx context.Context, c *runtime.Container) error {
	a := w.a
	// Whatever happens next, the teardown on failure must find the
	// network the container was given.
	w.netnsPath, w.ip = c.Labels[labelNetNS], c.Labels[labelIP]
	if !c.Running {
		return errors.New("task not running")
	}
	if c.Labels[labelRevision] != w.p.Spec.Revision {
		return fmt.Errorf("container runs revision %q, placement wants %q", c.Labels[labelRevision], w.p.Spec.Revision)
	}
	if (a.net == nil) != (w.netnsPath == "") {
		return errors.New("container network mode differs from the agent's")
	}
	appPort, err := strconv.Atoi(c.Labels[labelPort])
	if err != nil || appPort == 0 {
		return fmt.Errorf("bad %s label %q", labelPort, c.Labels[labelPort])
	}
	w.appPort = appPort
	if a.net == nil {
		a.ports.hold(appPort)
		w.hostPort = true
		w.target = net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort))
	} else {
		w.target = net.JoinHostPort(w.ip, strconv.Itoa(appPort))
		if err := a.net.Admit(ctx, w.name, w.p.Spec.Namespace, w.ip); err != nil {
			return fmt.Errorf("isolation rules: %w", err)
		}
	}
	// The sidecars' digests are not known again until they are recreated;
	// the controller keeps the ones it recorded.
	w.rec.ImageDigest = pinnedImage(w.p.Spec.Image, c.ImageDigest)
	w.rec.ContainerDigests = nil
	if n := w.p.Spec.ContainerName; n != "" && w.rec.ImageDigest != "" {
		w.rec.ContainerDigests = map[string]string{n: w.rec.ImageDigest}
	}
	if n, err := strconv.Atoi(c.Labels[labelRestarts]); err == nil && n > 0 {
		w.rec.RestartCount = int32(n)
	}
	qp, _ := strconv.Atoi(c.Labels[labelQueuePort])
	if len(a.cfg.QueueCommand) > 0 && qp > 0 {
		if q := w.adoptProcQueue(qp); q != nil {
			a.ports.hold(qp)
			w.queuePort = qp
			w.setProxy(q)
		}
	}
	if pq, ok := w.proxy.(*procQueue); ok && pq.ready.Load() {
		// The queue-proxy kept serving while no agent ran: the
		// instance stays in rotation, and probing resumes.
		w.rec.Ready = true
		w.rec.Endpoint = net.JoinHostPort(a.cfg.Address, strconv.Itoa(w.queuePort))
		w.rec.ContainerIP = w.ip
		w.setPhase(ctx, cluster.PhaseRunning, "", "")
	} else if !w.resumeRecord(ctx) {
		w.setPhase(ctx, cluster.PhaseStarting, "", "")
	}

	if w.proxy == nil && qp > 0 {
		if ln, err := a.ports.listenOn(a.cfg.Address, qp); err == nil {
			w.queueLn, w.queuePort = ln, qp
		} else {
			w.log.Warn("cannot reuse queue port, picking another", "queue_port", qp, "error", err)
		}
	}
	if w.proxy == nil && w.queueLn == nil {
		if w.queueLn, w.queuePort, err = a.ports.listen(a.cfg.Address); err != nil {
			return w.fail(ctx, "PortAllocationFailed", err)
		}
	}
	w.task, err = a.rt.Attach(ctx, c.ID)
	if err != nil {
		return err
	}
	w.taskStarted = time.Now()
	if err := w.attachSidecars(ctx); err != nil {
		return err
	}
	if w.proxy == nil {
		if err := w.startProxy(); err != nil {
			return w.fail(ctx, "QueueProxyFailed", err)
		}
	}
	t0 := time.Now()
	if w.rec.Ready {
		w.log.Info("instance adopted with its queue-proxy serving", "pid", w.task.PID, "endpoint", w.rec.Endpoint)
		return nil
	}
	if err := w.waitReady(ctx); err != nil {
		return err
	}
	w.log.Info("instance adopted", "pid", w.task.PID, "endpoint", w.rec.Endpoint,
		"ready_ms", time.Since(t0).Milliseconds())
	return nil
}

func (w *worker) startProxy() error {
	ln := w.queueLn
	w.queueLn = nil
	var q queueProxy
	var err error
	if len(w.a.cfg.QueueCommand) > 0 {
		q, err = w.startProcQueue(ln)
	} else {
		q, err = startInProcQueue(w.queueConfig(), ln, w.log)
	}
	if err != nil {
		_ = ln.Close()
		return err
	}
	w.setProxy(q)
	return nil
}

// restartQueue replaces a queue-proxy process that exited or stopped
// answering while its container runs: a new one on the same port, with
// the readiness the instance has, so the container is left alone and
// edges find the endpoint they know.
func (w *worker) restartQueue() error {
	old := w.proxy
	w.log.Warn("queue-proxy process gone; starting it again on its port", "queue_port", w.queuePort)
	_ = old.Close() // kills one that hangs; releases nothing of the pool
	ln, err := net.Listen("tcp", net.JoinHostPort(w.a.cfg.Address, strconv.Itoa(w.queuePort)))
	if err != nil {
		return err
	}
	w.queueLn = ln
	if err := w.startProxy(); err != nil {
		return err
	}
	w.proxy.SetReady(w.rec.Ready)
	return nil
}

// setProxy makes q the instance's queue-proxy.
func (w *worker) setProxy(q queueProxy) {
	w.proxy = q
	w.proxyRef.Store(&queueRef{q: q})
}

// prober is the probe p (nil: a TCP connect to the serving port) of this
// incarnation's serving container.
func (w *worker) prober(p *cluster.Probe) prober {
	host := w.ip
	if host == "" {
		host = "127.0.0.1"
	}
	return newProber(p, host, w.appPort, w.p.Spec.Port, containerID(w.name), w.a.rt)
}

// waitReady probes readiness until it passes successThreshold times in a
// row, the task exits or startTimeout (after initialDelaySeconds) passes.
// Probes start after initialDelaySeconds and come every periodSeconds, or
// every few milliseconds with periodSeconds 0 (Knative's aggressive
// startup probing).
func (w *worker) waitReady(ctx context.Context) error {
	pr := w.prober(readinessProbe(w.p.Spec))
	deadline := time.NewTimer(startTimeout + pr.initialDelay())
	defer deadline.Stop()
	next := time.NewTimer(pr.initialDelay())
	defer next.Stop()
	st := newStreak(pr)
	var lastErr error
	for ready := false; !ready; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-w.task.Exited:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return w.exited(ctx, st.ExitCode(), filepath.Join(w.a.cfg.StateDir, "logs", w.name+".log"),
				fmt.Errorf("exited with code %d before becoming ready", st.ExitCode()))
		case se := <-w.sideExit:
			return w.exited(ctx, se.code, filepath.Join(w.a.cfg.StateDir, "logs", sidecarID(w.name, se.name)+".log"),
				fmt.Errorf("%s before the instance became ready", se))
		case <-w.proxy.Gone():
			return w.fail(ctx, "QueueProxyExited", errors.New("queue-proxy process exited before the instance became ready"))
		case <-deadline.C:
			return w.fail(ctx, "ProbeTimeout", fmt.Errorf("not ready after %s (probing %s): %v", startTimeout, w.target, lastErr))
		case <-next.C:
			lastErr = pr.check(ctx)
			ok := lastErr == nil
			ready = st.record(ok) && ok
			next.Reset(pr.startInterval())
		}
	}
	w.proxy.SetReady(true)
	w.rec.Ready = true
	w.rec.Endpoint = net.JoinHostPort(w.a.cfg.Address, strconv.Itoa(w.queuePort))
	w.rec.ContainerIP = w.ip
	w.setPhase(ctx, cluster.PhaseRunning, "", "")
	return nil
}

// Kubelet's crash-loop backoff between in-place restarts: none for the
// first, then 10s doubling up to 5m; a container that ran 10m is forgiven.
const (
	restartBackoffBase  = 10 * time.Second
	restartBackoffMax   = 5 * time.Minute
	restartBackoffReset = 10 * time.Minute
)

// monitor watches a running instance. Readiness is probed every
// periodSeconds (probeInterval when 0): failureThreshold failures in a row
// take the instance out of rotation, successThreshold passes bring it
// back. A failing liveness probe, or a serving container that exits, is
// restarted in place (restartServing). A sidecar that exits fails the
// incarnation.
func (w *worker) monitor(ctx context.Context) error {
	for {
		restart, why, err := w.watch(ctx)
		if !restart {
			return err
		}
		if err := w.restartServing(ctx, why); err != nil {
			return err
		}
	}
}

// watch runs the probes of one task of the serving container until ctx
// ends (false, nil), the incarnation fails (false, err) or the container
// must be restarted (true, why).
func (w *worker) watch(ctx context.Context) (restart bool, why string, err error) {
	ready := w.prober(readinessProbe(w.p.Spec))
	readyTick := time.NewTicker(ready.period(probeInterval))
	defer readyTick.Stop()
	readyRun := newStreak(ready)

	var live prober
	var liveRun *streak
	var liveTimer *time.Timer
	var liveC <-chan time.Time
	if p := w.p.Spec.Liveness; p != nil {
		live = w.prober(p)
		liveRun = newStreak(live)
		// The first check comes initialDelaySeconds after the task
		// started, or a period after it became ready if that is later.
		liveTimer = time.NewTimer(max(live.initialDelay()-time.Since(w.taskStarted), live.period(defaultProbePeriod)))
		defer liveTimer.Stop()
		liveC = liveTimer.C
	}
	for {
		select {
		case <-ctx.Done():
			return false, "", nil
		case st := <-w.task.Exited:
			if ctx.Err() != nil {
				return false, "", nil
			}
			w.log.Warn("serving container exited after being ready; restarting it", "exit_code", st.ExitCode())
			return true, fmt.Sprintf("container exited with code %d", st.ExitCode()), nil
		case se := <-w.sideExit:
			if ctx.Err() != nil {
				return false, "", nil
			}
			w.proxy.SetReady(false)
			w.rec.Ready = false
			return false, "", w.exited(ctx, se.code, filepath.Join(w.a.cfg.StateDir, "logs", sidecarID(w.name, se.name)+".log"),
				fmt.Errorf("%s", se))
		case <-w.proxy.Gone():
			if ctx.Err() != nil {
				return false, "", nil
			}
			if err := w.restartQueue(); err != nil {
				w.rec.Ready = false
				return false, "", w.fail(ctx, "QueueProxyExited", fmt.Errorf("queue-proxy process exited or stopped answering, and could not be started again: %w", err))
			}
		case <-liveC:
			err := live.check(ctx)
			if ctx.Err() != nil {
				return false, "", nil
			}
			if liveRun.record(err == nil) && err != nil {
				w.log.Warn("liveness probe failed; restarting the serving container", "failures", liveRun.fails, "error", err)
				return true, fmt.Sprintf("liveness probe failed %d times: %v", liveRun.fails, err), nil
			}
			liveTimer.Reset(live.period(defaultProbePeriod))
		case <-readyTick.C:
			err := ready.check(ctx)
			if ctx.Err() != nil {
				return false, "", nil
			}
			ok := err == nil
			if !readyRun.record(ok) || ok == w.rec.Ready {
				continue
			}
			if ok {
				w.log.Info("instance ready again")
				w.proxy.SetReady(true)
				w.rec.Ready = true
				w.setPhase(ctx, cluster.PhaseRunning, "", "")
				continue
			}
			w.log.Warn("instance failed readiness probes", "failures", readyRun.fails, "error", err)
			w.proxy.SetReady(false)
			w.rec.Ready = false
			w.setPhase(ctx, cluster.PhaseRunning, "ProbeFailed", "readiness probe failing: "+err.Error())
		}
	}
}

// restartServing restarts the serving container in place, as a kubelet
// restarts a container of a pod (restartPolicy Always): the instance
// leaves rotation, the task is killed and a new one started in the same
// container and network namespace, RestartCount grows, and the instance
// returns once ready. Repeated restarts back off as kubelet's do.
func (w *worker) restartServing(ctx context.Context, why string) error {
	w.proxy.SetReady(false)
	w.rec.Ready = false
	if time.Since(w.lastRestart) > restartBackoffReset {
		w.restartDelay = 0
	}
	w.rec.RestartCount++
	w.setPhase(ctx, cluster.PhaseStarting, "Restarting", why)
	if d := w.restartDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	w.restartDelay = min(max(2*w.restartDelay, restartBackoffBase), restartBackoffMax)
	w.lastRestart = time.Now()
	task, err := w.a.rt.Restart(ctx, containerID(w.name), stopGrace, filepath.Join(w.a.cfg.StateDir, "logs", w.name+".log"),
		map[string]string{labelRestarts: strconv.Itoa(int(w.rec.RestartCount))})
	if err != nil {
		return w.fail(ctx, "ContainerRestartFailed", err)
	}
	w.task, w.taskStarted = task, time.Now()
	w.log.Info("serving container restarted in place", "restart_count", w.rec.RestartCount, "pid", task.PID, "reason", why)
	return w.waitReady(ctx)
}

// fail records phase Failed with reason and returns errFailed wrapping err.
// A ctx that ended is not a failure: the caller is going away.
func (w *worker) fail(ctx context.Context, reason string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	w.log.Error("instance failed", "reason", reason, "error", err)
	w.rec.Ready = false
	w.rec.Endpoint = ""
	w.setPhase(ctx, cluster.PhaseFailed, reason, err.Error())
	return fmt.Errorf("%s: %w: %w", reason, errFailed, err)
}

// exited fails the incarnation for a container that ended, recording its
// exit code and termination message (the tail of logPath, the container's
// log) on the record, as Knative reads them from a pod's
// lastState.terminated to say why a revision failed.
func (w *worker) exited(ctx context.Context, code uint32, logPath string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c := int32(code)
	w.rec.ExitCode, w.rec.TerminationMessage = &c, terminationMessage(logPath)
	return w.fail(ctx, "ContainerExited", err)
}

// Kubernetes's FallbackToLogsOnError keeps at most this much of a log.
const (
	terminationMessageLines = 80
	terminationMessageBytes = 2048
)

// terminationMessage is the end of the log at path as a kubelet makes a
// termination message from it: the last 80 lines, at most 2048 bytes, here
// without the final newline. A log that cannot be read gives "".
func terminationMessage(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-terminationMessageBytes, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	if i := len(b); i > 0 {
		for n := 0; n < terminationMessageLines; n++ {
			j := bytes.LastIndexByte(b[:i], '\n')
			if j < 0 {
				i = 0
				break
			}
			i = j
		}
		if i > 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// setPhase records the instance's phase. The write outlives ctx (bounded by
// storeTimeout): a stopping instance's last phases must still be written.
func (w *worker) setPhase(ctx context.Context, phase, reason, message string) {
	w.rec.Phase, w.rec.Reason, w.rec.Message = phase, reason, message
	if phase != cluster.PhaseFailed {
		// A new incarnation (or a stop) is past the last exit.
		w.rec.ExitCode, w.rec.TerminationMessage = nil, ""
	}
	w.rec.UpdatedAt = time.Now().UTC()
	if err := w.a.putRecord(ctx, w.rec); err != nil {
		w.log.Warn("write instance record", "phase", phase, "error", err)
	}
}

// teardown removes the current incarnation: proxy (drained when asked,
// bounded by the revision timeout), container, network, ports.
func (w *worker) teardown(ctx context.Context, drain bool) {
	a := w.a
	// Half a teardown would lose track of the netns and ports: finish it
	// even if the worker is cancelled meanwhile.
	ctx = context.WithoutCancel(ctx)
	if w.proxy != nil {
		if drain {
			dctx, cancel := context.WithTimeout(ctx, w.requestTimeout()+queueExitTimeout)
			if err := w.proxy.Drain(dctx); err != nil {
				w.log.Warn("drain queue-proxy", "error", err)
			}
			cancel()
		} else {
			_ = w.proxy.Close()
		}
	} else {
		if w.queueLn != nil {
			_ = w.queueLn.Close()
		}
		if len(a.cfg.QueueCommand) > 0 {
			// One an earlier agent left that was not adopted.
			a.stopQueueOf(w.name)
		}
	}
	if err := a.rt.Remove(ctx, containerID(w.name), stopGrace); err != nil {
		w.log.Error("remove container", "error", err)
	}
	w.removePod(ctx)
	if w.netnsPath != "" && a.net != nil {
		if err := a.net.Teardown(ctx, w.name, w.netnsPath); err != nil {
			w.log.Warn("tear down network", "error", err)
		}
	}
	w.releasePorts()
	w.task, w.netnsPath, w.ip, w.target = nil, "", "", ""
}

// detach lets go of the instance without touching the container; a
// queue-proxy process keeps serving it for the next agent.
func (w *worker) detach() {
	if w.proxy != nil {
		w.proxy.Detach()
	} else if w.queueLn != nil {
		_ = w.queueLn.Close()
	}
	w.releasePorts()
}

func (w *worker) releasePorts() {
	w.proxyRef.Store(nil)
	w.proxy, w.queueLn = nil, nil
	w.a.ports.release(w.queuePort)
	if w.hostPort {
		w.a.ports.release(w.appPort)
	}
	w.queuePort, w.appPort, w.hostPort = 0, 0, false
}

// containerEnv is what kiln adds to the image's environment: PORT and the
// K_* variables, then the user's (resolveEnvs), so the user can override,
// as in Knative.
func containerEnv(spec cluster.InstanceSpec, port int, user []string) []string {
	env := []string{"PORT=" + strconv.Itoa(port)}
	for _, kv := range [][2]string{
		{"K_SERVICE", spec.Service},
		{"K_CONFIGURATION", spec.Configuration},
		{"K_REVISION", spec.Revision},
	} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return append(env, user...)
}

// appendUserEnv appends the user's variables as NAME=value: those named in
// order first, in that order, then any others sorted, so the result is
// stable whatever the map's iteration order.
func appendUserEnv(env []string, vars map[string]string, order []string) []string {
	seen := map[string]bool{}
	for _, k := range order {
		if v, ok := vars[k]; ok && !seen[k] {
			seen[k] = true
			env = append(env, k+"="+v)
		}
	}
	var rest []string
	for k := range vars {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		env = append(env, k+"="+vars[k])
	}
	return env
}
