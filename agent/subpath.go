package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A subPath is a path inside a volume that a container of the same
// instance may have written: an init container can replace a directory by
// a symlink to / between the agent's check and runc's bind, and a lexical
// check (filepath.Rel) sees nothing wrong. So a subPath is resolved one
// component at a time with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
// from a descriptor of the volume root, refusing any symlink, and the
// directory found is pinned: bind-mounted from /proc/self/fd/N onto a
// mount point under the agent's state directory, which no container can
// reach. runc binds the pin, so what it mounts is the inode the agent
// resolved, whatever happens in the volume afterwards (as the kubelet does
// for subPath).

func (a *Agent) subPathRoot(instance string) string {
	return filepath.Join(a.cfg.StateDir, "subpaths", instance)
}

// openBeneath opens sub under root, creating missing directories (0777
// less the umask, as before), without following a symlink anywhere. The
// caller closes the descriptor.
func openBeneath(root, sub string) (int, error) {
	how := &unix.OpenHow{
		// No O_NOFOLLOW: with O_PATH it would open a trailing symlink
		// itself instead of failing with ELOOP.
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open volume: %w", err)
	}
	parts := strings.Split(filepath.Clean(sub), "/")
	for i, part := range parts {
		if part == "." || part == "" {
			continue
		}
		next, err := unix.Openat2(fd, part, how)
		if errors.Is(err, unix.ENOENT) {
			// A missing directory is created, as Kubernetes does; the
			// mkdirat is relative to the descriptor, so it cannot land
			// outside either.
			if err = unix.Mkdirat(fd, part, 0o777); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat2(fd, part, how)
			}
		}
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
				return -1, fmt.Errorf("subPath %q: %q is a symlink, which a subPath may not go through", sub, strings.Join(parts[:i+1], "/"))
			}
			return -1, fmt.Errorf("subPath %q: %w", sub, err)
		}
		fd = next
	}
	return fd, nil
}

// pinSubPath resolves sub within root and bind-mounts it on pin (created
// as a directory or an empty file to match), returning pin.
func pinSubPath(root, sub, pin string) (string, error) {
	fd, err := openBeneath(root, sub)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return "", err
	}
	// A pin left by an earlier incarnation is released first; what it
	// pinned may no longer be what sub names.
	unpin(pin)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = os.Mkdir(pin, 0o700)
	case unix.S_IFREG:
		var f *os.File
		if f, err = os.OpenFile(pin, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			err = f.Close()
		}
	default:
		// Devices, sockets, fifos (and symlinks, which openBeneath
		// refuses already) are not what a subPath may name.
		err = fmt.Errorf("not a directory or a regular file")
	}
	if err != nil {
		return "", fmt.Errorf("subPath %q: pin: %w", sub, err)
	}
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, pin, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		_ = os.Remove(pin)
		return "", fmt.Errorf("subPath %q: bind: %w", sub, err)
	}
	return pin, nil
}

// unpin unmounts and removes one pin. Remove, not RemoveAll: if the
// unmount failed, the pin is still the user's directory, and rmdir of a
// mount point fails instead of deleting what is behind it.
func unpin(pin string) {
	for unix.Unmount(pin, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) == nil {
		// Stacked binds from repeated attempts: take them all off.
	}
	_ = os.Remove(pin)
}

// removeSubPathPins releases every pin of an instance. Errors are those of
// pins that would not go.
func (a *Agent) removeSubPathPins(instance string) error {
	root := a.subPathRoot(instance)
	ctrs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range ctrs {
		dir := filepath.Join(root, c.Name())
		pins, _ := os.ReadDir(dir)
		for _, p := range pins {
			unpin(filepath.Join(dir, p.Name()))
		}
		if err := os.Remove(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(root); err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
