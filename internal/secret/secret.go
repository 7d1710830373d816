package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// Store reads and writes secrets. Create it with New.
type Store struct {
	st   store.Store
	keys *encryption.Keys
	now  func() time.Time
}

// New returns a secret store over st that seals values with keys. Nil keys
// store plain text (and cannot read sealed values).
func New(st store.Store, keys *encryption.Keys) *Store {
	return &Store{st: st, keys: keys, now: time.Now}
}

// Decode opens and parses a stored value, setting resourceVersion from kv.
// Errors wrap encryption.ErrDecrypt when the value cannot be decrypted
// with keys.
func Decode(kv store.KV, keys *encryption.Keys) (*corev1.Secret, error) {
	plain, _, err := keys.Open(kv.Key, kv.Value)
	if err != nil {
		return nil, fmt.Errorf("decode secret %s: %w", strings.TrimPrefix(kv.Key, store.SecretsPrefix), err)
	}
	s := &corev1.Secret{}
	if err := json.Unmarshal(plain, s); err != nil {
		return nil, fmt.Errorf("decode secret %s: %w", strings.TrimPrefix(kv.Key, store.SecretsPrefix), err)
	}
	s.Metadata.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return s, nil
}

// Get returns ns/name. Errors: errdefs.ErrNotFound, errdefs.ErrInvalidArgument.
func (s *Store) Get(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	if err := checkNames(ns, name); err != nil {
		return nil, err
	}
	kv, err := s.st.Get(ctx, store.SecretKey(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("secrets %q not found in namespace %q: %w", name, ns, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return Decode(kv, s.keys)
}

// List returns the secrets of ns ("" = all) and the revision read at.
func (s *Store) List(ctx context.Context, ns string) ([]*corev1.Secret, int64, error) {
	if err := checkNames(ns, "x"); ns != "" && err != nil {
		return nil, 0, err
	}
	kvs, rev, err := s.st.List(ctx, store.SecretListPrefix(ns))
	if err != nil {
		return nil, 0, err
	}
	out := make([]*corev1.Secret, 0, len(kvs))
	for _, kv := range kvs {
		sec, err := Decode(kv, s.keys)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, sec)
	}
	return out, rev, nil
}

// Create stores a new secret (already defaulted and validated). Errors:
// errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument (names not DNS-1123 labels).
func (s *Store) Create(ctx context.Context, sec *corev1.Secret) (*corev1.Secret, error) {
	m := &sec.Metadata
	if err := checkNames(m.Namespace, m.Name); err != nil {
		return nil, err
	}
	m.UID = metav1.NewUID()
	m.CreationTimestamp = metav1.NewTime(s.now())
	m.ResourceVersion, m.Generation = "", 0
	key := store.SecretKey(m.Namespace, m.Name)
	b, err := s.encode(key, sec)
	if err != nil {
		return nil, err
	}
	rev, err := s.st.Put(ctx, key, b, store.IfRevision(0))
	if errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("secrets %q already exists in namespace %q: %w", m.Name, m.Namespace, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return sec, nil
}

// Update replaces a secret, keeping uid and creation time; a set
// resourceVersion makes it a compare-and-swap. Errors: errdefs.ErrNotFound,
// errdefs.ErrConflict, errdefs.ErrInvalidArgument.
func (s *Store) Update(ctx context.Context, sec *corev1.Secret) (*corev1.Secret, error) {
	m := &sec.Metadata
	key := store.SecretKey(m.Namespace, m.Name)
	cur, err := s.Get(ctx, m.Namespace, m.Name)
	if err != nil {
		return nil, err
	}
	expect, _ := strconv.ParseInt(cur.Metadata.ResourceVersion, 10, 64)
	if m.ResourceVersion != "" && m.ResourceVersion != cur.Metadata.ResourceVersion {
		return nil, fmt.Errorf("Operation cannot be fulfilled on secrets %q: the object has been modified: %w", m.Name, errdefs.ErrConflict)
	}
	m.UID, m.CreationTimestamp, m.ResourceVersion = cur.Metadata.UID, cur.Metadata.CreationTimestamp, ""
	b, err := s.encode(key, sec)
	if err != nil {
		return nil, err
	}
	rev, err := s.st.Put(ctx, key, b, store.IfRevision(expect))
	if err != nil {
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return sec, nil
}

// encode is the stored form of sec under key: JSON, sealed when keys are
// configured.
func (s *Store) encode(key string, sec *corev1.Secret) ([]byte, error) {
	b, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(key, b)
}

// Delete removes ns/name. Errors: errdefs.ErrNotFound, errdefs.ErrInvalidArgument.
func (s *Store) Delete(ctx context.Context, ns, name string) error {
	if err := checkNames(ns, name); err != nil {
		return err
	}
	err := s.st.Delete(ctx, store.SecretKey(ns, name))
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("secrets %q not found in namespace %q: %w", name, ns, errdefs.ErrNotFound)
	}
	return err
}

// Redact returns a copy of sec without its secret material: what the API
// hands to clients. A TLS secret keeps its certificate (it is public) and
// loses its private key; an Opaque secret keeps its keys with empty values.
func Redact(sec *corev1.Secret) *corev1.Secret {
	out := *sec
	out.Data = map[string][]byte{}
	for k, v := range sec.Data {
		switch {
		case sec.Type != corev1.SecretTypeTLS:
			out.Data[k] = []byte{}
		case k == corev1.TLSPrivateKeyKey:
		default:
			out.Data[k] = v
		}
	}
	return &out
}
