package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// Secret, configMap and projected volumes are written as a kubelet writes
// them: each key (or each of items) a file, with items' mode, else the
// volume's defaultMode, else 0644; a projected volume merges its sources
// in order, a later file replacing an earlier one of the same path. They
// live on a tmpfs of their own under STATE-DIR/volumes/<instance>/<volume>
// (never on disk: Secret values), are written once when the instance
// starts (a later change of the object is seen by the next instance, not
// this one), are mounted read-only, and go with the instance.

// defaultFileMode is Kubernetes' default for these volumes' files.
const defaultFileMode = 0o644

// volumeFile is one file of a volume: its content and mode.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

// keysVolume says whether v is written from ConfigMaps, Secrets or tokens.
func keysVolume(v cluster.Volume) bool {
	return v.Secret != nil || v.ConfigMap != nil || v.Projected != nil
}

// volumeFiles computes the files of a secret, configMap or projected
// volume of spec. Errors are errConfig, with the kubelet's words.
func volumeFiles(ctx context.Context, objs *objectCache, tokens *tokenSigner, spec cluster.InstanceSpec, v cluster.Volume, now time.Time) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	add := func(kv *cluster.KeysVolume, secret bool, defMode *int32) error {
		mode := os.FileMode(defaultFileMode)
		if defMode != nil {
			mode = os.FileMode(*defMode)
		}
		kind, what := "configmap", "config"
		if secret {
			kind, what = "secret", "secret"
		}
		data, err := objs.get(ctx, secret, kv.Name)
		if errdefs.IsNotFound(err) && kv.Optional {
			return nil
		}
		if err != nil {
			return err
		}
		if len(kv.Items) == 0 {
			for k, d := range data {
				files[k] = volumeFile{data: d, mode: mode}
			}
			return nil
		}
		for _, it := range kv.Items {
			d, ok := data[it.Key]
			if !ok {
				if kv.Optional {
					continue
				}
				return fmt.Errorf("%s references non-existent %s key: %s", kind, what, it.Key)
			}
			m := mode
			if it.Mode != nil {
				m = os.FileMode(*it.Mode)
			}
			files[it.Path] = volumeFile{data: d, mode: m}
		}
		return nil
	}
	var err error
	switch {
	case v.Secret != nil:
		err = add(v.Secret, true, v.Secret.DefaultMode)
	case v.ConfigMap != nil:
		err = add(v.ConfigMap, false, v.ConfigMap.DefaultMode)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				err = add(src.Secret, true, v.Projected.DefaultMode)
			case src.ConfigMap != nil:
				err = add(src.ConfigMap, false, v.Projected.DefaultMode)
			case src.ServiceAccountToken != nil:
				t := src.ServiceAccountToken
				var tok string
				if tok, err = tokens.token(spec.Namespace, spec.ServiceAccountName, t.Audience, t.ExpirationSeconds, now); err == nil {
					mode := os.FileMode(defaultFileMode)
					if m := v.Projected.DefaultMode; m != nil {
						mode = os.FileMode(*m)
					}
					files[t.Path] = volumeFile{data: []byte(tok), mode: mode}
				}
			}
			if err != nil {
				break
			}
		}
	default:
		return nil, fmt.Errorf("volume %s has no ConfigMap, Secret or projected source", v.Name)
	}
	if err != nil {
		return nil, asConfigError(fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", v.Name, err))
	}
	return files, nil
}

// writeVolumeFiles writes files into dir, which the agent just created and
// no container has seen yet; paths were checked by validatePlacement
// (relative, without ".."). Parent directories get 0755.
func writeVolumeFiles(dir string, files map[string]volumeFile) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		f := files[p]
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, 0o600); err != nil {
			return err
		}
		// WriteFile's mode goes through the umask; the file's mode is the
		// user's.
		if err := os.Chmod(full, f.mode&os.ModePerm); err != nil {
			return err
		}
	}
	return nil
}

// errNoTokens is returned when a token is asked of an agent without a
// signing key.
var errNoTokens = errors.New("the agent has no service account token signing key")
