package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// Prefix starts every sealed value; the key name and ':' follow it.
const Prefix = "kiln:enc:aesgcm:v1:"

// KeySize is the length of a key: AES-256.
const KeySize = 32

// ErrDecrypt is returned when a sealed value cannot be opened: its key is
// not in the key file, no key file is configured, or the value was
// tampered with or sealed under another store key.
var ErrDecrypt = errors.New("cannot decrypt")

// validName keeps key names printable and free of ':', which ends the name
// in the envelope.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// File is the key file's shape:
//
//	keys:
//	- name: key2
//	  secret: <base64 of 32 random bytes>
//	- name: key1
//	  secret: ...
//
// JSON with the same fields is read too.
type File struct {
	// Keys is required and non-empty. The first key seals writes; every
	// key opens reads, so a rotated-out key stays until no value uses it.
	Keys []FileKey `json:"keys"`
}

// FileKey is one named key of a File.
type FileKey struct {
	// Name is required, unique in the file, [A-Za-z0-9._-] and at most 63
	// characters. It is stored in every value the key seals, so it is
	// immutable once used.
	Name string `json:"name"`
	// Secret is the base64 (standard encoding) of KeySize bytes.
	Secret string `json:"secret"`
}

type namedKey struct {
	name string
	aead cipher.AEAD
}

// Keys seals and opens values. A nil *Keys is valid: it writes plain text
// and opens only plain text, which is how kiln behaves without a key file.
type Keys struct {
	source string // the file the keys came from, for errors
	keys   []namedKey
}

// Load reads the key file at path.
func Load(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	return Parse(b, path)
}

// Parse reads a key file's contents; source names it in errors.
func Parse(data []byte, source string) (*Keys, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("encryption key file %s: %w", source, err)
	}
	return New(f, source)
}

// New validates f and builds its Keys; source names the file in errors.
func New(f File, source string) (*Keys, error) {
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("encryption key file %s: no keys", source)
	}
	k := &Keys{source: source}
	seen := map[string]bool{}
	for i, fk := range f.Keys {
		if !validName.MatchString(fk.Name) {
			return nil, fmt.Errorf("encryption key file %s: keys[%d].name %q: want 1-63 of [A-Za-z0-9._-], starting with a letter or digit", source, i, fk.Name)
		}
		if seen[fk.Name] {
			return nil, fmt.Errorf("encryption key file %s: key %q listed twice", source, fk.Name)
		}
		seen[fk.Name] = true
		raw, err := base64.StdEncoding.DecodeString(fk.Secret)
		if err != nil {
			return nil, fmt.Errorf("encryption key file %s: key %q: secret is not base64", source, fk.Name)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("encryption key file %s: key %q: secret is %d bytes, want %d", source, fk.Name, len(raw), KeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("encryption key file %s: key %q: %w", source, fk.Name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encryption key file %s: key %q: %w", source, fk.Name, err)
		}
		k.keys = append(k.keys, namedKey{name: fk.Name, aead: aead})
	}
	return k, nil
}

// WriteKey is the name of the key that seals writes; "" for nil Keys.
func (k *Keys) WriteKey() string {
	if k == nil {
		return ""
	}
	return k.keys[0].name
}

// Names lists the keys in file order.
func (k *Keys) Names() []string {
	if k == nil {
		return nil
	}
	out := make([]string, len(k.keys))
	for i, nk := range k.keys {
		out[i] = nk.name
	}
	return out
}

// Source is the file the keys were read from.
func (k *Keys) Source() string {
	if k == nil {
		return ""
	}
	return k.source
}

// Seal encrypts plain under the write key, bound to storeKey. With nil
// Keys it returns plain unchanged.
func (k *Keys) Seal(storeKey string, plain []byte) ([]byte, error) {
	if k == nil {
		return plain, nil
	}
	w := k.keys[0]
	// Random nonces: GCM's 2^32-messages-per-key bound is far beyond the
	// number of secret writes a key sees between rotations.
	nonce := make([]byte, w.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: nonce: %w", storeKey, err)
	}
	out := make([]byte, 0, len(Prefix)+len(w.name)+1+len(nonce)+len(plain)+w.aead.Overhead())
	out = append(out, Prefix...)
	out = append(out, w.name...)
	out = append(out, ':')
	out = append(out, nonce...)
	return w.aead.Seal(out, nonce, plain, []byte(storeKey)), nil
}

// KeyName returns the name of the key that sealed stored, or "" when stored
// is plain text.
func KeyName(stored []byte) string {
	rest, ok := bytes.CutPrefix(stored, []byte(Prefix))
	if !ok {
		return ""
	}
	name, _, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return ""
	}
	return string(name)
}

// Open decrypts stored, read from storeKey. current reports whether stored
// is already what Seal writes now (sealed under the write key; plain text
// when Keys is nil), so a re-encryption can skip it. Plain text is returned
// as is. Errors: ErrDecrypt, naming the key and the key file.
func (k *Keys) Open(storeKey string, stored []byte) (plain []byte, current bool, err error) {
	rest, sealed := bytes.CutPrefix(stored, []byte(Prefix))
	if !sealed {
		return stored, k == nil, nil
	}
	name, body, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return nil, false, fmt.Errorf("%s: malformed envelope (no key name): %w", storeKey, ErrDecrypt)
	}
	if k == nil {
		return nil, false, fmt.Errorf("%s is encrypted with key %q but no encryption key file is configured (--encryption-key-file): %w", storeKey, name, ErrDecrypt)
	}
	for i, nk := range k.keys {
		if nk.name != string(name) {
			continue
		}
		ns := nk.aead.NonceSize()
		if len(body) < ns+nk.aead.Overhead() {
			return nil, false, fmt.Errorf("%s: sealed value too short for key %q: %w", storeKey, name, ErrDecrypt)
		}
		plain, err := nk.aead.Open(nil, body[:ns], body[ns:], []byte(storeKey))
		if err != nil {
			// GCM says only "message authentication failed": a different
			// secret under the same name, a tampered value, or one
			// copied from another key path.
			return nil, false, fmt.Errorf("%s: key %q in %s does not authenticate the value (wrong secret for that name, or the value was altered): %w", storeKey, name, k.source, ErrDecrypt)
		}
		return plain, i == 0, nil
	}
	return nil, false, fmt.Errorf("%s is encrypted with key %q, which is not in %s (keys: %s): %w", storeKey, name, k.source, strings.Join(k.Names(), ", "), ErrDecrypt)
}

// NewFileKey returns a key named name with a fresh random secret.
func NewFileKey(name string) (FileKey, error) {
	if !validName.MatchString(name) {
		return FileKey{}, fmt.Errorf("key name %q: want 1-63 of [A-Za-z0-9._-], starting with a letter or digit", name)
	}
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return FileKey{}, err
	}
	return FileKey{Name: name, Secret: base64.StdEncoding.EncodeToString(raw)}, nil
}

// ReadFile parses the key file at path without building ciphers, for
// tools that edit it.
func ReadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("encryption key file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return f, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return f, nil
}

// header explains the file to whoever opens it.
const header = `# kiln secrets encryption keys (AES-256-GCM). The first key encrypts new
# writes; every key decrypts. To rotate: add a key first, restart the
# apiserver and xds roles, run 'kilnd admin reencrypt-secrets', then remove
# the old key. Keep this file 0600 and out of etcd backups.
`

// WriteFile validates f and writes it to path with mode 0600. With
// exclusive set it fails if path exists, so a key file is never
// overwritten by accident.
func WriteFile(path string, f File, exclusive bool) error {
	if _, err := New(f, path); err != nil {
		return err
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exclusive {
		flags |= os.O_EXCL
	}
	// Write a sibling and rename, so a crash never leaves a truncated
	// key file (and with it undecryptable secrets).
	tmp := path
	if !exclusive {
		tmp = path + ".tmp"
	}
	fd, err := os.OpenFile(tmp, flags, 0o600)
	if err != nil {
		return fmt.Errorf("write encryption key file: %w", err)
	}
	if _, err := fd.Write(append([]byte(header), b...)); err != nil {
		fd.Close()
		return fmt.Errorf("write encryption key file %s: %w", tmp, err)
	}
	if err := fd.Sync(); err != nil {
		fd.Close()
		return fmt.Errorf("write encryption key file %s: %w", tmp, err)
	}
	if err := fd.Close(); err != nil {
		return fmt.Errorf("write encryption key file %s: %w", tmp, err)
	}
	if tmp != path {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write encryption key file: %w", err)
		}
	}
	return nil
}
