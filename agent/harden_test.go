package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func i64p(v int64) *int64 { return &v }

func TestValidatePlacement(t *testing.T) {
	good := func() cluster.Placement {
		return cluster.Placement{Instance: "hello-00001-abcde", Node: node, Spec: cluster.InstanceSpec{
			Namespace: "default", Service: "hello", Revision: "hello-00001", Image: "registry.local:5000/hello@sha256:" + strings.Repeat("a", 64),
			Port: 8080, WorkingDir: "/app", Env: map[string]string{"A": "1"},
			Mounts:   []cluster.VolumeMount{{Volume: "data", Path: "/data", SubPath: "a/b"}},
			Volumes:  []cluster.Volume{{Name: "data", EmptyDir: &cluster.EmptyDirVolume{}}, {Name: "claim", PersistentVolumeClaim: &cluster.ClaimVolume{ClaimName: "my.claim"}}},
			Security: &cluster.Security{RunAsUser: i64p(1000), CapAdd: []string{"NET_BIND_SERVICE"}, CapDrop: []string{"ALL"}},
			Sidecars: []cluster.ContainerSpec{{Name: "side", Image: "busybox", Mounts: []cluster.VolumeMount{{Volume: "claim", Path: "/c"}}}},
		}}
	}
	tests := []struct {
		name  string
		iname string
		mut   func(p *cluster.Placement)
		want  string // in the error; "" for valid
	}{
		{name: "valid", mut: func(*cluster.Placement) {}},
		{name: "instance name with a slash", iname: "../../etc", mut: func(*cluster.Placement) {}, want: `instance "../../etc"`},
		{name: "instance differs from key", mut: func(p *cluster.Placement) { p.Instance = "other" }, want: "its key"},
		{name: "namespace", mut: func(p *cluster.Placement) { p.Spec.Namespace = "Default" }, want: "namespace"},
		{name: "image", mut: func(p *cluster.Placement) { p.Spec.Image = "hello:bad tag" }, want: "image"},
		{name: "port", mut: func(p *cluster.Placement) { p.Spec.Port = 70000 }, want: "port 70000"},
		{name: "relative workingDir", mut: func(p *cluster.Placement) { p.Spec.WorkingDir = "app" }, want: "workingDir"},
		{name: "env with =", mut: func(p *cluster.Placement) { p.Spec.Env = map[string]string{"A=B": ""} }, want: "environment"},
		{name: "subPath up", mut: func(p *cluster.Placement) { p.Spec.Mounts[0].SubPath = "a/../../x" }, want: "'..'"},
		{name: "absolute subPath", mut: func(p *cluster.Placement) { p.Spec.Mounts[0].SubPath = "/etc" }, want: "relative"},
		{name: "mount on /", mut: func(p *cluster.Placement) { p.Spec.Mounts[0].Path = "/" }, want: "reserved"},
		{name: "unknown volume", mut: func(p *cluster.Placement) { p.Spec.Mounts[0].Volume = "nope" }, want: "no volume"},
		{name: "claim name", mut: func(p *cluster.Placement) { p.Spec.Volumes[1].PersistentVolumeClaim.ClaimName = ".." }, want: "claim name"},
		{name: "valid object sources", mut: func(p *cluster.Placement) {
			p.Spec.Volumes = append(p.Spec.Volumes, cluster.Volume{Name: "p", Projected: &cluster.ProjectedVolume{Sources: []cluster.Projection{
				{Secret: &cluster.KeysVolume{Name: "s", Items: []cluster.KeyToPath{{Key: "k", Path: "a/b"}}}},
				{ServiceAccountToken: &cluster.TokenProjection{Path: "token"}}}}})
			p.Spec.EnvRefs = map[string]cluster.EnvKeyRef{"B": {ConfigMap: "cm.x", Key: "k"}}
			p.Spec.EnvFrom = []cluster.EnvFromSource{{Secret: "s", Prefix: "P_"}}
		}},
		{name: "secret name reaching another namespace", mut: func(p *cluster.Placement) {
			p.Spec.Volumes[0] = cluster.Volume{Name: "data", Secret: &cluster.KeysVolume{Name: "../kube-system/s"}}
		}, want: `invalid ConfigMap or Secret name "../kube-system/s"`},
		{name: "item path out of the volume", mut: func(p *cluster.Placement) {
			p.Spec.Volumes[0] = cluster.Volume{Name: "data", ConfigMap: &cluster.KeysVolume{Name: "c", Items: []cluster.KeyToPath{{Key: "k", Path: "../../etc/x"}}}}
		}, want: `file path "../../etc/x"`},
		{name: "token path absolute", mut: func(p *cluster.Placement) {
			p.Spec.Volumes[0] = cluster.Volume{Name: "data", Projected: &cluster.ProjectedVolume{Sources: []cluster.Projection{{ServiceAccountToken: &cluster.TokenProjection{Path: "/etc/token"}}}}}
		}, want: `file path "/etc/token"`},
		{name: "two volume sources", mut: func(p *cluster.Placement) {
			p.Spec.Volumes[0].ConfigMap = &cluster.KeysVolume{Name: "c"}
		}, want: "two sources"},
		{name: "env ref naming both", mut: func(p *cluster.Placement) {
			p.Spec.EnvRefs = map[string]cluster.EnvKeyRef{"B": {ConfigMap: "c", Secret: "s", Key: "k"}}
		}, want: "one ConfigMap or Secret"},
		{name: "envFrom object name", mut: func(p *cluster.Placement) {
			p.Spec.Sidecars[0].EnvFrom = []cluster.EnvFromSource{{ConfigMap: "a/b"}}
		}, want: `invalid ConfigMap or Secret name "a/b"`},
		{name: "SYS_ADMIN", mut: func(p *cluster.Placement) { p.Spec.Security.CapAdd = []string{"SYS_ADMIN"} }, want: `"SYS_ADMIN" cannot be added`},
		{name: "sidecar SYS_ADMIN", mut: func(p *cluster.Placement) {
			p.Spec.Sidecars[0].Security = &cluster.Security{CapAdd: []string{"SYS_ADMIN"}}
		}, want: `container "side": capability`},
		{name: "negative uid", mut: func(p *cluster.Placement) { p.Spec.Security.RunAsUser = i64p(-1) }, want: "user or group id"},
		{name: "sidecar name", mut: func(p *cluster.Placement) { p.Spec.Sidecars[0].Name = "a.b" }, want: `container "a.b"`},
		{name: "negative limit", mut: func(p *cluster.Placement) { p.Spec.LimitMemoryMiB = -1 }, want: "negative resources"},
		{name: "probes", mut: func(p *cluster.Placement) {
			p.Spec.Readiness = &cluster.Probe{Exec: []string{"/bin/ready"}, PeriodSeconds: 1}
			p.Spec.Liveness = &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/healthz", Scheme: "HTTPS"}, Port: 9090}
		}},
		{name: "probe with two actions", mut: func(p *cluster.Placement) {
			p.Spec.Readiness = &cluster.Probe{Exec: []string{"/bin/ready"}, TCPSocket: true}
		}, want: "readiness probe: needs exactly one"},
		{name: "probe without action", mut: func(p *cluster.Placement) { p.Spec.Liveness = &cluster.Probe{} }, want: "liveness probe: needs exactly one"},
		{name: "relative probe path", mut: func(p *cluster.Placement) {
			p.Spec.Liveness = &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "healthz"}}
		}, want: "httpGet.path"},
		{name: "probe scheme", mut: func(p *cluster.Placement) {
			p.Spec.Readiness = &cluster.Probe{HTTPGet: &cluster.HTTPGetProbe{Path: "/", Scheme: "ftp"}}
		}, want: "httpGet.scheme"},
		{name: "probe port", mut: func(p *cluster.Placement) { p.Spec.Readiness = &cluster.Probe{TCPSocket: true, Port: 70000} }, want: "readiness probe: port"},
		{name: "negative probe period", mut: func(p *cluster.Placement) {
			p.Spec.Liveness = &cluster.Probe{TCPSocket: true, PeriodSeconds: -1}
		}, want: "must not be negative"},
		{name: "negative idle timeout", mut: func(p *cluster.Placement) { p.Spec.IdleTimeoutSeconds = -1 }, want: "idleTimeoutSeconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.mut(&p)
			name := "hello-00001-abcde"
			if tc.iname != "" {
				name, p.Instance = tc.iname, tc.iname
			}
			err := validatePlacement(name, p)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid placement refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The agent runs containers with the cgroup limits from limits, CPU shares
// from the CPU request, its pids limit and the placement's securityContext.
func TestAgentAppliesLimitsAndSecurity(t *testing.T) {
	e := newUnitEnv(t, false)
	e.run(t, e.cfg)
	s := e.spec(t, "hello-00001")
	s.MilliCPU, s.MemoryMiB = 100, 64
	s.LimitMilliCPU, s.LimitMemoryMiB = 500, 256
	s.Security = &cluster.Security{RunAsUser: i64p(1000), RunAsGroup: i64p(2000), SupplementalGroups: []int64{7},
		ReadOnlyRootFilesystem: true, CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}
	e.place(t, "hello-a", s)
	e.waitRecord(t, "hello-a", "running", running)
	got, _ := e.node.spec("hello-a")
	if got.MilliCPU != 500 || got.MemoryMiB != 256 || got.PidsLimit != 1024 || got.RequestMilliCPU != 100 {
		t.Errorf("cgroup: cpu %dm (request %dm) memory %dMi pids %d", got.MilliCPU, got.RequestMilliCPU, got.MemoryMiB, got.PidsLimit)
	}
	sec := got.Security
	if sec.UID == nil || *sec.UID != 1000 || sec.GID == nil || *sec.GID != 2000 || !slices.Equal(sec.AdditionalGIDs, []uint32{7}) ||
		!sec.ReadOnlyRootfs || sec.AllowPrivilegeEscalation || !slices.Equal(sec.CapDrop, []string{"ALL"}) ||
		!slices.Equal(sec.CapAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("security = %+v", sec)
	}

	plain := e.spec(t, "hello-00002")
	e.place(t, "hello-b", plain)
	e.waitRecord(t, "hello-b", "running", running)
	if got, _ := e.node.spec("hello-b"); !(got.Security.UID == nil && !got.Security.AllowPrivilegeEscalation && got.MilliCPU == 0) {
		t.Errorf("defaults: %+v", got)
	}
}

// A bad placement fails its own instance, with nothing started for it, and
// leaves the others alone; runAsNonRoot over a root image fails with the
// kubelet's reason.
func TestAgentRefusesBadPlacements(t *testing.T) {
	e := newUnitEnv(t, false)
	e.run(t, e.cfg)
	bad := e.spec(t, "hello-00001")
	bad.Security = &cluster.Security{CapAdd: []string{"SYS_ADMIN"}}
	e.place(t, "hello-bad", bad)
	root := e.spec(t, "hello-00001")
	root.Security = &cluster.Security{RunAsNonRoot: true}
	e.place(t, "hello-root", root)
	e.place(t, "hello-ok", e.spec(t, "hello-00001"))

	inst := e.waitRecord(t, "hello-bad", "failed", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	if inst.Reason != reasonInvalidPlacement || !strings.Contains(inst.Message, "SYS_ADMIN") {
		t.Errorf("bad placement: reason %q message %q", inst.Reason, inst.Message)
	}
	inst = e.waitRecord(t, "hello-root", "failed", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	if inst.Reason != reasonRunAsRoot || !strings.Contains(inst.Message, "runAsNonRoot and image will run as root") {
		t.Errorf("root image: reason %q message %q", inst.Reason, inst.Message)
	}
	e.waitRecord(t, "hello-ok", "running", running)
	if n := e.node.startCount("hello-bad"); n != 0 {
		t.Errorf("bad placement started %d times", n)
	}
	e.unplace(t, "hello-bad")
	e.waitNoRecord(t, "hello-bad")
}

// An init container that swaps a subPath directory for a symlink to a host
// directory must not get the host directory mounted: the symlink is refused
// when the subPath is resolved, and a swap after resolution changes
// nothing, because runc binds the pinned directory, not the path. Root:
// it bind-mounts.
func TestSubPathSymlinkSwap(t *testing.T) {
	testenv.RequireRoot(t)
	state := t.TempDir()
	a := &Agent{cfg: Config{StateDir: state}}
	vol := filepath.Join(t.TempDir(), "vol")
	host := t.TempDir() // stands for a host directory such as /etc
	must(t, os.WriteFile(filepath.Join(host, "secret"), []byte("host"), 0o600))
	must(t, os.MkdirAll(filepath.Join(vol, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(vol, "data", "mine"), []byte("volume"), 0o600))
	vols := map[string]hostVolume{"v": {path: vol}}
	pins := filepath.Join(a.subPathRoot("inst"), "inst")
	defer func() {
		if err := a.removeVolumes("inst"); err != nil {
			t.Errorf("removeVolumes: %v", err)
		}
		if _, err := os.Stat(a.subPathRoot("inst")); !os.IsNotExist(err) {
			t.Errorf("pins left behind: %v", err)
		}
		if _, err := os.Stat(filepath.Join(host, "secret")); err != nil {
			t.Errorf("host file harmed by cleanup: %v", err)
		}
	}()

	// Resolved while it is a directory, then swapped: the pin still holds
	// the volume's directory.
	ms, err := containerMounts(vols, []cluster.VolumeMount{{Volume: "v", Path: "/data", SubPath: "data"}}, pins)
	must(t, err)
	must(t, os.Rename(filepath.Join(vol, "data"), filepath.Join(vol, "old")))
	must(t, os.Symlink(host, filepath.Join(vol, "data")))
	if !strings.HasPrefix(ms[0].Source, state) {
		t.Fatalf("mount source %q is not a pin under the state dir", ms[0].Source)
	}
	if b, err := os.ReadFile(filepath.Join(ms[0].Source, "mine")); err != nil || string(b) != "volume" {
		t.Errorf("pinned subPath shows %q, %v; want the volume's file", b, err)
	}
	if _, err := os.Stat(filepath.Join(ms[0].Source, "secret")); err == nil {
		t.Error("pinned subPath shows the host directory")
	}

	// Resolved after the swap: refused, whichever component is the link.
	for _, sub := range []string{"data", "data/x", "old/../data"} {
		if _, err := containerMounts(vols, []cluster.VolumeMount{{Volume: "v", Path: "/d", SubPath: sub}}, pins); err == nil {
			t.Errorf("subPath %q through a symlink to the host accepted", sub)
		}
	}
	must(t, os.Symlink("old", filepath.Join(vol, "inner")))
	if _, err := containerMounts(vols, []cluster.VolumeMount{{Volume: "v", Path: "/d", SubPath: "inner"}}, pins); err == nil ||
		!strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink subPath: err = %v, want it refused as a symlink", err)
	}

	// A missing subPath is created inside the volume, a file is pinned too.
	ms, err = containerMounts(vols, []cluster.VolumeMount{
		{Volume: "v", Path: "/new", SubPath: "new/dir"},
		{Volume: "v", Path: "/mine", SubPath: "old/mine"},
	}, pins)
	must(t, err)
	if st, err := os.Stat(filepath.Join(vol, "new", "dir")); err != nil || !st.IsDir() {
		t.Errorf("subPath not created: %v", err)
	}
	if b, err := os.ReadFile(ms[1].Source); err != nil || string(b) != "volume" {
		t.Errorf("file subPath shows %q, %v", b, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The subPath attack for real: an init container replaces the serving
// container's subPath directory in a shared claim with a symlink to /.
// The serving container still gets the claim's directory (its subPath
// was pinned before the init container ran), and a later instance, which
// finds the symlink in place, fails instead of mounting the host's root.
func TestSubPathSwapByInitContainer(t *testing.T) {
	e := newTestEnv(t, false)
	image := e.toolbox(t)
	cfg := e.cfg
	cfg.StopOnExit = true
	cfg.VolumeRoot = t.TempDir()
	e.startAgent(t, cfg)
	claimDir := filepath.Join(cfg.VolumeRoot, "default", "shared")
	must(t, os.MkdirAll(filepath.Join(claimDir, "sub"), 0o777))
	must(t, os.WriteFile(filepath.Join(claimDir, "sub", "marker"), []byte("volume"), 0o644))

	spec := e.podSpec("pod-00001", image)
	spec.Volumes = []cluster.Volume{{Name: "data", PersistentVolumeClaim: &cluster.ClaimVolume{ClaimName: "shared"}}}
	spec.Mounts = []cluster.VolumeMount{{Volume: "data", Path: "/data", SubPath: "sub"}}
	spec.InitContainers = []cluster.ContainerSpec{{Name: "swap", Image: image, Args: []string{"swap", "/v/sub", "/"},
		Mounts: []cluster.VolumeMount{{Volume: "data", Path: "/v"}}}}
	e.place(t, "pod-00001-a", spec)
	inst := e.waitInstance(t, "pod-00001-a", running)
	if fi, err := os.Lstat(filepath.Join(claimDir, "sub")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the init container did not swap the subPath: %v %v", fi, err)
	}
	if code, body := getPath(t, inst.Endpoint, "/read?path=/data/marker"); code != 200 || body != "volume" {
		t.Errorf("serving container's subPath: %d %q, want the claim's directory", code, body)
	}
	if code, _ := getPath(t, inst.Endpoint, "/read?path=/data/etc/os-release"); code == 200 {
		t.Error("serving container sees the host's root through its subPath")
	}

	// The symlink is still there for the next instance: refused.
	spec.Revision, spec.InitContainers = "pod-00002", nil
	e.place(t, "pod-00002-a", spec)
	failed := e.waitInstance(t, "pod-00002-a", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	if failed.Reason != "VolumeSetupFailed" || !strings.Contains(failed.Message, "symlink") {
		t.Errorf("instance over a swapped subPath: reason %q message %q", failed.Reason, failed.Message)
	}
	if containerExists(e, "pod-00002-a") {
		t.Error("a container was created over a swapped subPath")
	}
	for _, n := range []string{"pod-00001-a", "pod-00002-a"} {
		e.unplace(t, n)
		e.waitGone(t, store.InstanceKey(node, n))
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "subpaths")); err == nil {
		if ents, _ := os.ReadDir(filepath.Join(cfg.StateDir, "subpaths")); len(ents) != 0 {
			t.Errorf("subPath pins left after the instances stopped: %v", ents)
		}
	}
}
