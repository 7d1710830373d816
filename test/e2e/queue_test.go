package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/agent/queue"
)

// queueSockets lists the control sockets of the queue-proxy processes under
// an agent's state directory.
func queueSockets(stateDir string) []string {
	socks, _ := filepath.Glob(filepath.Join(stateDir, "queue", "*.sock"))
	return socks
}

// queueState asks the queue-proxy process at sock for its state.
func queueState(sock string) (queue.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ctl := queue.NewControlClient(sock)
	defer ctl.CloseIdle()
	return ctl.State(ctx)
}

// stopQueueProcs stops every queue-proxy process whose control socket is
// under the agent state directory stateDir, killing those that do not go.
func stopQueueProcs(stateDir string) {
	for _, sock := range queueSockets(stateDir) {
		st, err := queueState(sock)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ctl := queue.NewControlClient(sock)
		if ctl.Stop(ctx) != nil || !waitGone(st.PID, 5*time.Second) {
			syscall.Kill(st.PID, syscall.SIGKILL)
		}
		ctl.CloseIdle()
		cancel()
	}
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits up to d for process pid to end.
func waitGone(pid int, d time.Duration) bool {
	return waitUntil(d, func() error {
		if alive(pid) {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	}) == nil
}

// An agent killed with SIGKILL under steady load fails no request: each
// instance's queue-proxy is a process of its own that keeps serving, and
// the agent started again adopts it as it is (same process) without
// taking the instance out of rotation. Deleting the service then stops it.
func TestQueueProxyOutlivesAgent(t *testing.T) {
	c := startCluster(t)
	stateDir := filepath.Join(c.dir, "agent")
	// min-scale 1 and no burst capacity: the gateway sends to the
	// instance's queue-proxy directly, without the activator in the path.
	c.mustRun("service", "create", "steady", "--image", c.image, "--env", "RESPONSE=steady", "--scale-min", "1",
		"--annotation", "autoscaling.knative.dev/target-burst-capacity=0")
	host := "steady.default.example.com"
	c.eventuallyBody(host, "steady", 60*time.Second)
	socks := queueSockets(stateDir)
	if len(socks) != 1 {
		t.Fatalf("queue-proxy control sockets under %s: %v, want one", stateDir, socks)
	}
	before, err := queueState(socks[0])
	if err != nil {
		t.Fatalf("queue-proxy state: %v", err)
	}
	if !before.Ready || before.PID == 0 {
		t.Fatalf("queue-proxy state %+v, want ready with a pid", before)
	}

	stop := make(chan struct{})
	replies := c.load(host, "/", 4, stop)
	time.Sleep(time.Second)
	t0 := time.Now()
	agentProc := c.procs["agent"]
	if err := agentProc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	agentProc.Wait()
	time.Sleep(3 * time.Second)
	c.start("agent-restarted", "agent", c.agentArgs...)
	c.waitFor("the restarted agent adopted the queue-proxy", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(c.dir, "agent-restarted.log"))
		return strings.Contains(string(b), "queue-proxy process adopted")
	})
	t.Logf("agent killed and restarted; queue-proxy adopted %v after the kill", time.Since(t0).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	close(stop)
	rs := <-replies
	n, some := failures(rs)
	t.Logf("%d requests through the agent's kill and restart, %d failed", len(rs), n)
	if n > 0 {
		t.Errorf("%d of %d requests failed, e.g. %v", n, len(rs), some)
	}
	after, err := queueState(socks[0])
	if err != nil {
		t.Fatalf("queue-proxy state after the restart: %v", err)
	}
	if after.PID != before.PID || !after.Ready {
		t.Errorf("queue-proxy after the restart: pid %d ready %v, want the same process (pid %d), ready", after.PID, after.Ready, before.PID)
	}

	// A queue-proxy process that dies under a running agent is started
	// again on its port, its container left alone.
	syscall.Kill(after.PID, syscall.SIGKILL)
	var again queue.State
	c.waitFor("a new queue-proxy process on the same port, ready", 30*time.Second, func() bool {
		again, err = queueState(socks[0])
		return err == nil && again.PID != after.PID && again.Ready && again.Port == after.Port
	})
	c.eventuallyBody(host, "steady", 30*time.Second)
	b, _ := os.ReadFile(filepath.Join(c.dir, "agent-restarted.log"))
	if strings.Contains(string(b), "QueueProxyExited") || strings.Contains(string(b), "incarnation ended") {
		t.Errorf("the instance was recreated after its queue-proxy died; agent log:\n%s", b)
	}
	if !strings.Contains(string(b), "starting it again on its port") {
		t.Errorf("the agent did not log the queue-proxy's restart")
	}
	before = again

	c.mustRun("service", "delete", "steady")
	if !waitGone(before.PID, 60*time.Second) {
		t.Errorf("queue-proxy process %d still runs after its service was deleted", before.PID)
	}
	if left := queueSockets(stateDir); len(left) != 0 {
		t.Errorf("control sockets left after the service was deleted: %v", left)
	}
}
