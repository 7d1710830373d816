package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func pushHello(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	img, err := imagebuild.BuildGoImage(ctx, "../../deploy/samples/hello")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := imagebuild.ServeRegistry(ln)
	t.Cleanup(func() { srv.Close() })
	ref := ln.Addr().String() + "/samples/hello:latest"
	if _, err := imagebuild.Push(ctx, img, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestRunHostNetwork(t *testing.T) {
	addr := testenv.StartContainerd(t)
	ref := pushHello(t)
	rt, err := New(addr, "kiln-test", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t0 := time.Now()
	img, err := rt.EnsureImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	tPull := time.Since(t0)
	if !strings.HasPrefix(img.Digest, "sha256:") {
		t.Errorf("digest %q", img.Digest)
	}
	// By digest and present: no registry round trip needed.
	byDigest := ref[:strings.LastIndex(ref, ":")] + "@" + img.Digest
	if _, err := rt.EnsureImage(ctx, byDigest); err != nil {
		t.Fatalf("ensure by digest: %v", err)
	}

	port := testenv.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "c.log")
	t1 := time.Now()
	task, err := rt.Start(ctx, Spec{
		ID:      "hello-1",
		Image:   img,
		Env:     []string{fmt.Sprintf("PORT=%d", port), "RESPONSE=hi from runtime"},
		Labels:  map[string]string{"kiln.dev/instance": "hello-1"},
		LogPath: logPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	tStart := time.Since(t1)
	if task.PID == 0 {
		t.Error("task has no PID")
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body string
	testenv.Eventually(t, "the container to serve on "+url, 30*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true
	})
	tReady := time.Since(t1)
	// Nothing asked: the hardened defaults, as the host sees the process.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", task.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^CapBnd:\s+00000000a80425fb$`, // Docker's and containerd's default set
		`(?m)^NoNewPrivs:\s+1$`,
		`(?m)^Seccomp:\s+2$`,
	} {
		if !regexp.MustCompile(want).Match(status) {
			t.Errorf("default container: /proc/<pid>/status does not match %s:\n%s", want, status)
		}
	}
	// Knative's runtime contract: the container sees its cgroups at
	// /sys/fs/cgroup, read-only. (On cgroup v1 runc holds the controllers
	// in a tmpfs it leaves writable; it holds mount points only.)
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", task.PID))
	if err != nil {
		t.Fatal(err)
	}
	cgroupMounts := 0
	for line := range strings.Lines(string(mountinfo)) {
		pre, post, _ := strings.Cut(line, " - ")
		f, fs := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(fs) < 1 || (f[4] != "/sys/fs/cgroup" && !strings.HasPrefix(f[4], "/sys/fs/cgroup/")) ||
			(fs[0] != "cgroup" && fs[0] != "cgroup2") {
			continue
		}
		cgroupMounts++
		if !slices.Contains(strings.Split(f[5], ","), "ro") {
			t.Errorf("cgroup mount is not read-only: %s", line)
		}
	}
	if cgroupMounts == 0 {
		t.Errorf("no cgroup mounted at /sys/fs/cgroup:\n%s", mountinfo)
	}
	if body != "hi from runtime\n" {
		t.Fatalf("body %q", body)
	}
	t.Logf("pull %s, create+start %s, serving after %s", tPull, tStart, tReady)

	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Running || list[0].PID != task.PID || list[0].Labels["kiln.dev/instance"] != "hello-1" || list[0].ImageDigest != img.Digest {
		t.Errorf("List = %+v", list)
	}
	if _, err := rt.Attach(ctx, "hello-1"); err != nil {
		t.Errorf("Attach: %v", err)
	}

	if err := rt.Remove(ctx, "hello-1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-task.Exited:
	case <-time.After(5 * time.Second):
		t.Error("Exited not signalled after Remove")
	}
	if list, _ := rt.List(ctx); len(list) != 0 {
		t.Errorf("containers left after Remove: %+v", list)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "serving on") {
		t.Errorf("log file lacks the start line: %q", b)
	}
	if err := rt.Remove(ctx, "hello-1", time.Second); err != nil {
		t.Errorf("Remove of a missing container: %v", err)
	}

	// runAsUser: the uid has no entry in the image's /etc/passwd, so the
	// process runs with gid 0, as under the kubelet.
	task, err = rt.Start(ctx, Spec{ID: "hello-2", Image: img, Env: []string{fmt.Sprintf("PORT=%d", port)},
		Security: Security{UID: u32(2020)}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), "hello-2", 0)
	status, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", task.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^Uid:\s+2020\s+2020\s+2020\s+2020$`, `(?m)^Gid:\s+0\s+0\s+0\s+0$`} {
		if !regexp.MustCompile(want).Match(status) {
			t.Errorf("runAsUser 2020: /proc/<pid>/status does not match %s:\n%s", want, status)
		}
	}
}

func TestPullFailure(t *testing.T) {
	addr := testenv.StartContainerd(t)
	rt, err := New(addr, "kiln-test", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := imagebuild.ServeRegistry(ln)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rt.EnsureImage(ctx, ln.Addr().String()+"/nope:latest"); err == nil {
		t.Error("pull of a missing image succeeded")
	}
}
