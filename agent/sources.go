package agent

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// objectSource reads the data of the ConfigMaps and Secrets an instance
// refers to, when the instance starts (as a kubelet does). Values never
// travel in placements; the agent reads them from etcd, read-only.
type objectSource interface {
	// ConfigMap returns data and binaryData of ns/name as bytes.
	// Errors: errdefs.ErrNotFound.
	ConfigMap(ctx context.Context, ns, name string) (map[string][]byte, error)
	// Secret returns the data of ns/name. Errors: errdefs.ErrNotFound.
	Secret(ctx context.Context, ns, name string) (map[string][]byte, error)
}

// storeObjects reads configmaps/ and secrets/ (opened with keys, the
// apiserver's --encryption-key-file; nil reads plain secrets only).
type storeObjects struct {
	st   store.Store
	keys *encryption.Keys
}

var _ objectSource = storeObjects{}

func (s storeObjects) ConfigMap(ctx context.Context, ns, name string) (map[string][]byte, error) {
	kv, err := s.st.Get(ctx, store.ConfigMapKey(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, objectNotFound{kind: "configmap", name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("read configmap %s/%s: %w", ns, name, err)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(kv.Value, &cm); err != nil {
		return nil, fmt.Errorf("decode configmap %s/%s: %w", ns, name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	return data, nil
}

func (s storeObjects) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	kv, err := s.st.Get(ctx, store.SecretKey(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, objectNotFound{kind: "secret", name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s: %w", ns, name, err)
	}
	sec, err := secret.Decode(kv, s.keys)
	if err != nil {
		return nil, err
	}
	return sec.Data, nil
}

// objectNotFound is a missing ConfigMap or Secret, in the kubelet's words
// (`configmap "x" not found`); it is errdefs.ErrNotFound.
type objectNotFound struct{ kind, name string }

func (e objectNotFound) Error() string        { return fmt.Sprintf("%s %q not found", e.kind, e.name) }
func (e objectNotFound) Is(target error) bool { return target == errdefs.ErrNotFound }

// errConfig marks a failure to assemble a container's configuration from
// its ConfigMaps and Secrets (a missing object or key): the kubelet's
// CreateContainerConfigError. The agent retries it with backoff, so
// creating the object later lets the instance start.
var errConfig = fmt.Errorf("container configuration")

// reasonConfigError is the instance record's reason for errConfig, as a
// kubelet reports the waiting container.
const reasonConfigError = "CreateContainerConfigError"

// configError is err as an errConfig, its message unchanged.
type configError struct{ err error }

func (e configError) Error() string       { return e.err.Error() }
func (e configError) Unwrap() []error     { return []error{errConfig, e.err} }
func asConfigError(err error) configError { return configError{err} }
