package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// ContainerdBinary is the containerd the tests run: the Debian package's.
const ContainerdBinary = "/usr/bin/containerd"

// RequireRoot skips the test when not running as root. As root (CI, the dev
// VM) it never skips, so root-only tests always run where they can.
//
// `go test -short` (make unit) also skips them: it is the explicit request
// for the quick, containerd-free subset; make test never passes -short.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that drives containerd, runc and CNI (make test runs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("test needs root (containerd, runc, CNI); run as root to exercise it")
	}
}

// StartContainerd starts a private containerd with its root and state in
// temporary directories and returns its gRPC socket address. It skips the
// test when not root; as root a missing containerd is a failure (install
// the Debian packages containerd, runc and containernetworking-plugins).
// When the test ends, every task and container it holds (in any namespace)
// is killed and deleted, then containerd is stopped.
func StartContainerd(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(ContainerdBinary); err != nil {
		t.Fatalf("containerd not installed (%v): apt-get install -y containerd runc containernetworking-plugins", err)
	}

	// Not t.TempDir: a shim that outlives containerd can still be writing
	// its task directory when the test ends, and TempDir's own removal
	// would then fail the test. The cleanup below ends the shims first and
	// removes the directory itself.
	data, err := os.MkdirTemp("", "kiln-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	// unix socket paths are limited to 108 bytes; t.TempDir() paths embed
	// the test name and can be far longer.
	sockDir, err := os.MkdirTemp("/tmp", "kctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	address := filepath.Join(sockDir, "c.sock")

	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(data, "root"), filepath.Join(data, "state"), address, address+".ttrpc")
	configPath := filepath.Join(data, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(data, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(ContainerdBinary, "--config", configPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group, so a signal to the test's group (Ctrl-C) does
	// not kill containerd before the cleanup below ran.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()

	dumpLog := func() {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("containerd log (tail):\n%s", b)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	if err := waitContainerd(address, exited, 30*time.Second); err != nil {
		stop()
		dumpLog()
		t.Fatalf("containerd did not come up: %v", err)
	}

	t.Cleanup(func() {
		if err := removeAll(address); err != nil {
			t.Logf("containerd cleanup: %v", err)
		}
		stop()
		if t.Failed() {
			dumpLog()
		}
		killShims(address)
		if err := removeData(data); err != nil {
			t.Logf("containerd cleanup: %v", err)
		}
	})
	return address
}

// killShims ends the runc shims serving the containerd at address: they
// outlive containerd by design.
func killShims(address string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.Contains(args[0], "containerd-shim") || !slices.Contains(args, address) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeData unmounts what is still mounted under dir (rootfs of tasks
// the shims left), then removes it, retrying while the killed shims let go.
func removeData(dir string) error {
	var err error
	for range 20 {
		if mi, rerr := os.ReadFile("/proc/self/mountinfo"); rerr == nil {
			for _, line := range strings.Split(string(mi), "\n") {
				if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
					_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
				}
			}
		}
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func waitContainerd(address string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("containerd exited")
		default:
		}
		if _, err := os.Stat(address); err == nil {
			ok, err := ping(address)
			if ok {
				return nil
			}
			lastErr = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s: %v", timeout, lastErr)
}

func ping(address string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := containerd.New(address, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Version(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// removeAll kills and deletes every task and container in every namespace,
// so no runc process or shim outlives the test.
func removeAll(address string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := containerd.New(address)
	if err != nil {
		return err
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers in %s: %w", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				_ = task.Kill(nctx, syscall.SIGKILL, containerd.WithKillAll)
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("delete task %s/%s: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}
