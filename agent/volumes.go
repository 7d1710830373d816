package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// Volumes on a VM:
//
//   - emptyDir: STATE-DIR/volumes/<instance>/<volume>, created before the
//     first container of the instance starts (init containers included) and
//     removed with the instance, so every container of one instance shares
//     it and nothing outlives it. medium: Memory mounts a tmpfs there
//     (sizeLimit becomes its size).
//   - secret, configMap, projected: a tmpfs at the same place as an
//     emptyDir, holding the files keyvolumes.go writes, always read-only.
//   - persistentVolumeClaim: VOLUME-ROOT/<namespace>/<claimName>, created on
//     first use and never removed by kiln: the claim is the directory, and
//     whatever provisions it (a local disk, an NFS or CephFS mount placed
//     there by the operator) is outside kiln. Every instance of every
//     revision naming the claim on this node sees the same files.
//
// Read-only is enforced by the bind mount, from either the volume
// (persistentVolumeClaim.readOnly) or the mount (volumeMounts[].readOnly).

// hostVolume is a prepared volume: its host directory and whether the
// volume itself is read-only.
type hostVolume struct {
	path     string
	readOnly bool
}

func (a *Agent) emptyDirRoot(instance string) string {
	return filepath.Join(a.cfg.StateDir, "volumes", instance)
}

// prepareVolumes creates (or, for an adopted instance, finds) the host side
// of every volume of spec. Errors name the volume.
// Secret, configMap and projected volumes are read through objs (see
// keyvolumes.go); their errors are errConfig.
func (a *Agent) prepareVolumes(ctx context.Context, instance string, spec cluster.InstanceSpec, objs *objectCache) (map[string]hostVolume, error) {
	vols := map[string]hostVolume{}
	for _, v := range spec.Volumes {
		switch {
		case keysVolume(v):
			files, err := volumeFiles(ctx, objs, a.tokens, spec, v, time.Now())
			if err != nil {
				return nil, err
			}
			dir := filepath.Join(a.emptyDirRoot(instance), v.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if !isMountPoint(dir) {
				if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755"); err != nil {
					return nil, fmt.Errorf("volume %s: mount tmpfs: %w", v.Name, err)
				}
			}
			if err := writeVolumeFiles(dir, files); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			vols[v.Name] = hostVolume{path: dir, readOnly: true}
		case v.EmptyDir != nil:
			dir := filepath.Join(a.emptyDirRoot(instance), v.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if strings.EqualFold(v.EmptyDir.Medium, "Memory") && !isMountPoint(dir) {
				opts := "mode=0777"
				if v.EmptyDir.SizeLimitMiB > 0 {
					opts += fmt.Sprintf(",size=%dm", v.EmptyDir.SizeLimitMiB)
				}
				if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
					return nil, fmt.Errorf("volume %s: mount tmpfs: %w", v.Name, err)
				}
			}
			// Like Kubernetes: world-writable, so a non-root user in the
			// image can use its scratch space.
			if err := os.Chmod(dir, 0o777); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			vols[v.Name] = hostVolume{path: dir}
		case v.PersistentVolumeClaim != nil:
			claim := v.PersistentVolumeClaim.ClaimName
			if claim == "" || claim == "." || claim == ".." || strings.ContainsAny(claim, `/\`) {
				return nil, fmt.Errorf("volume %s: invalid claim name %q", v.Name, claim)
			}
			dir := filepath.Join(a.cfg.VolumeRoot, spec.Namespace, claim)
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, fmt.Errorf("volume %s: claim %s: %w", v.Name, claim, err)
				}
				if err := os.Chmod(dir, 0o777); err != nil {
					return nil, fmt.Errorf("volume %s: claim %s: %w", v.Name, claim, err)
				}
			} else if err != nil {
				return nil, fmt.Errorf("volume %s: claim %s: %w", v.Name, claim, err)
			}
			vols[v.Name] = hostVolume{path: dir, readOnly: v.PersistentVolumeClaim.ReadOnly}
		default:
			return nil, fmt.Errorf("volume %s: no supported source", v.Name)
		}
	}
	return vols, nil
}

// containerMounts turns a container's volume mounts into bind mounts. A
// subPath is resolved safely and pinned under pinDir (see subpath.go).
func containerMounts(vols map[string]hostVolume, ms []cluster.VolumeMount, pinDir string) ([]runtime.Mount, error) {
	var out []runtime.Mount
	for i, m := range ms {
		v, ok := vols[m.Volume]
		if !ok {
			return nil, fmt.Errorf("mount %s: no volume %q", m.Path, m.Volume)
		}
		src := v.path
		if m.SubPath != "" {
			if err := checkSubPath(m.SubPath); err != nil {
				return nil, fmt.Errorf("mount %s: %w", m.Path, err)
			}
			pin, err := pinSubPath(v.path, m.SubPath, filepath.Join(pinDir, strconv.Itoa(i)))
			if err != nil {
				return nil, fmt.Errorf("mount %s: %w", m.Path, err)
			}
			src = pin
		}
		out = append(out, runtime.Mount{Source: src, Destination: m.Path, ReadOnly: m.ReadOnly || v.readOnly})
	}
	return out, nil
}

// removeVolumes deletes an instance's emptyDir volumes, unmounting the
// tmpfs ones first, and its subPath pins. Claim directories are never
// touched.
func (a *Agent) removeVolumes(instance string) error {
	// Pins first: they hold binds of directories inside the volumes.
	if err := a.removeSubPathPins(instance); err != nil {
		return fmt.Errorf("release subPath pins: %w", err)
	}
	root := a.emptyDirRoot(instance)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(root, e.Name())
		if isMountPoint(dir) {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
				continue
			}
		}
	}
	if len(errs) > 0 {
		// Never RemoveAll through a mount we failed to detach.
		return errors.Join(errs...)
	}
	return os.RemoveAll(root)
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var st, pst syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(dir), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}
