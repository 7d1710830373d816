package agent

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

var (
	toolboxOnce sync.Once
	toolboxImg  v1.Image
	toolboxErr  error
)

// toolbox pushes the toolbox test image (testdata/toolbox) to e's registry.
func (e *testEnv) toolbox(t *testing.T) string {
	t.Helper()
	toolboxOnce.Do(func() {
		toolboxImg, toolboxErr = imagebuild.BuildGoImage(context.Background(), "testdata/toolbox")
	})
	if toolboxErr != nil {
		t.Fatal(toolboxErr)
	}
	ref := e.regURL + "/test/toolbox:latest"
	if _, err := imagebuild.Push(context.Background(), toolboxImg, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// getPath GETs path (with its query) through the instance's queue-proxy.
func getPath(t *testing.T, endpoint, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + endpoint + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fetchVia asks the serving container to GET a URL from inside the pod.
func fetchVia(t *testing.T, endpoint, u string) (int, string) {
	t.Helper()
	return getPath(t, endpoint, "/fetch?url="+url.QueryEscape(u))
}

func (e *testEnv) podSpec(rev, image string) cluster.InstanceSpec {
	return cluster.InstanceSpec{
		Namespace: "default", Service: "pod", Configuration: "pod", Revision: rev,
		Image: image, Args: []string{"serve"}, ContainerName: "main",
		Env: map[string]string{"RESPONSE": "main"}, EnvOrder: []string{"RESPONSE"}, TimeoutSeconds: 30,
	}
}

func containerExists(e *testEnv, id string) bool {
	_, err := e.ctd.LoadContainer(e.nsCtx(), id)
	return err == nil
}

// TestPodFeatures runs Knative's pod-spec extensions for real: sidecars on
// the instance's localhost, emptyDir shared between containers and gone
// with the instance (tmpfs for medium Memory), a claim directory that
// outlives instances and honours readOnly, and init containers run in
// order before the app, a failing one failing the instance.
func TestPodFeatures(t *testing.T) {
	e := newTestEnv(t, false)
	image := e.toolbox(t)
	cfg := e.cfg
	cfg.StopOnExit = true
	cfg.VolumeRoot = t.TempDir()
	e.startAgent(t, cfg)

	t.Run("sidecar shares localhost and emptyDir", func(t *testing.T) {
		spec := e.podSpec("pod-00001", image)
		spec.Mounts = []cluster.VolumeMount{{Volume: "scratch", Path: "/scratch"}, {Volume: "mem", Path: "/mem"}}
		spec.Sidecars = []cluster.ContainerSpec{{
			Name: "side", Image: image, Args: []string{"serve"},
			Env: map[string]string{"PORT": "9000", "RESPONSE": "side"}, EnvOrder: []string{"PORT", "RESPONSE"},
			Mounts: []cluster.VolumeMount{{Volume: "scratch", Path: "/shared"}},
		}}
		spec.Volumes = []cluster.Volume{
			{Name: "scratch", EmptyDir: &cluster.EmptyDirVolume{}},
			{Name: "mem", EmptyDir: &cluster.EmptyDirVolume{Medium: "Memory", SizeLimitMiB: 8}},
		}
		e.place(t, "pod-00001-a", spec)
		inst := e.waitInstance(t, "pod-00001-a", running)
		if d := inst.ContainerDigests; !strings.Contains(d["main"], "@sha256:") || d["main"] != inst.ImageDigest || d["side"] != d["main"] {
			t.Errorf("container digests %v, imageDigest %q: want both containers pinned to the same REPO@sha256", d, inst.ImageDigest)
		}

		// Only the serving container is probed (as in Knative): the
		// instance can turn ready a moment before its sidecar listens.
		testenv.Eventually(t, "the sidecar to listen on localhost:9000", 0, func() bool {
			code, _ := fetchVia(t, inst.Endpoint, "http://127.0.0.1:9000/")
			return code != http.StatusBadGateway
		})
		if code, body := fetchVia(t, inst.Endpoint, "http://127.0.0.1:9000/"); code != 200 || body != "side\n" {
			t.Fatalf("serving container → sidecar on localhost:9000: %d %q", code, body)
		}
		if code, body := getPath(t, inst.Endpoint, "/write?path=/scratch/note&body=from-main"); code != 200 {
			t.Fatalf("write to emptyDir: %d %q", code, body)
		}
		if code, body := fetchVia(t, inst.Endpoint, "http://127.0.0.1:9000/read?path=/shared/note"); code != 200 || body != "from-main" {
			t.Fatalf("sidecar reads the serving container's file: %d %q", code, body)
		}
		if code, body := getPath(t, inst.Endpoint, "/write?path=/mem/x&body=1"); code != 200 {
			t.Fatalf("write to memory emptyDir: %d %q", code, body)
		}
		volDir := filepath.Join(cfg.StateDir, "volumes", "pod-00001-a")
		if b, err := os.ReadFile(filepath.Join(volDir, "scratch", "note")); err != nil || string(b) != "from-main" {
			t.Fatalf("host side of the emptyDir: %q %v", b, err)
		}
		if !isMountPoint(filepath.Join(volDir, "mem")) {
			t.Fatal("medium Memory volume is not a tmpfs mount")
		}

		e.unplace(t, "pod-00001-a")
		e.waitGone(t, store.InstanceKey(node, "pod-00001-a"))
		if containerExists(e, sidecarID("pod-00001-a", "side")) || containerExists(e, "pod-00001-a") {
			t.Fatal("containers left after the instance stopped")
		}
		if _, err := os.Stat(volDir); !os.IsNotExist(err) {
			t.Fatalf("emptyDir volumes left after the instance stopped: %v", err)
		}
	})

	t.Run("claim persists across instances", func(t *testing.T) {
		claim := []cluster.Volume{{Name: "data", PersistentVolumeClaim: &cluster.ClaimVolume{ClaimName: "pv-claim"}}}
		spec := e.podSpec("pod-00002", image)
		spec.Volumes = claim
		spec.Mounts = []cluster.VolumeMount{{Volume: "data", Path: "/data"}}
		e.place(t, "pod-00002-a", spec)
		inst := e.waitInstance(t, "pod-00002-a", running)
		if code, body := getPath(t, inst.Endpoint, "/write?path=/data/kept&body=persisted"); code != 200 {
			t.Fatalf("write to claim: %d %q", code, body)
		}
		e.unplace(t, "pod-00002-a")
		e.waitGone(t, store.InstanceKey(node, "pod-00002-a"))
		if b, err := os.ReadFile(filepath.Join(cfg.VolumeRoot, "default", "pv-claim", "kept")); err != nil || string(b) != "persisted" {
			t.Fatalf("claim directory after the instance: %q %v", b, err)
		}

		// A later instance (another revision) sees the file; a read-only
		// mount cannot write.
		spec = e.podSpec("pod-00003", image)
		spec.Volumes = claim
		spec.Mounts = []cluster.VolumeMount{{Volume: "data", Path: "/data", ReadOnly: true}}
		e.place(t, "pod-00003-a", spec)
		inst = e.waitInstance(t, "pod-00003-a", running)
		if code, body := getPath(t, inst.Endpoint, "/read?path=/data/kept"); code != 200 || body != "persisted" {
			t.Fatalf("read the claim from a new instance: %d %q", code, body)
		}
		if code, body := getPath(t, inst.Endpoint, "/write?path=/data/kept&body=overwritten"); code != 403 || !strings.Contains(body, "read-only") {
			t.Fatalf("write through a read-only mount: %d %q", code, body)
		}
		e.unplace(t, "pod-00003-a")
		e.waitGone(t, store.InstanceKey(node, "pod-00003-a"))
	})

	t.Run("init containers run in order before the app", func(t *testing.T) {
		spec := e.podSpec("pod-00004", image)
		spec.Volumes = []cluster.Volume{{Name: "work", EmptyDir: &cluster.EmptyDirVolume{}}}
		spec.Mounts = []cluster.VolumeMount{{Volume: "work", Path: "/work"}}
		for _, step := range []string{"first", "second", "third"} {
			spec.InitContainers = append(spec.InitContainers, cluster.ContainerSpec{
				Name: "init-" + step, Image: image, Args: []string{"append", "/w/log", step},
				Mounts: []cluster.VolumeMount{{Volume: "work", Path: "/w"}},
			})
		}
		e.place(t, "pod-00004-a", spec)
		inst := e.waitInstance(t, "pod-00004-a", running)
		if code, body := getPath(t, inst.Endpoint, "/read?path=/work/log"); code != 200 || body != "first\nsecond\nthird\n" {
			t.Fatalf("init containers' log seen by the app: %d %q", code, body)
		}
		for _, step := range []string{"first", "second", "third"} {
			if containerExists(e, initID("pod-00004-a", "init-"+step)) {
				t.Errorf("init container %s left behind", step)
			}
		}
		e.unplace(t, "pod-00004-a")
		e.waitGone(t, store.InstanceKey(node, "pod-00004-a"))
	})

	t.Run("failing init container fails the instance", func(t *testing.T) {
		spec := e.podSpec("pod-00005", image)
		spec.InitContainers = []cluster.ContainerSpec{
			{Name: "ok", Image: image, Args: []string{"exit", "0"}},
			{Name: "bad", Image: image, Args: []string{"exit", "3"}},
		}
		e.place(t, "pod-00005-a", spec)
		inst := e.waitInstance(t, "pod-00005-a", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
		if inst.Reason != "InitContainerFailed" || inst.Message != `init container "bad" exited with code 3` {
			t.Fatalf("record %+v", inst)
		}
		if containerExists(e, "pod-00005-a") {
			t.Fatal("the serving container started although an init container failed")
		}
		e.unplace(t, "pod-00005-a")
		e.waitGone(t, store.InstanceKey(node, "pod-00005-a"))
	})
}
