package secret

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

const keyPEM = "-----BEGIN EC PRIVATE KEY-----\nnot-a-real-key\n-----END EC PRIVATE KEY-----\n"

func tlsSecret(name string) *corev1.Secret {
	return &corev1.Secret{Metadata: metav1.ObjectMeta{Namespace: "default", Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("CERT-" + name), corev1.TLSPrivateKeyKey: []byte(keyPEM)}}
}

// b64 is how JSON stores Data values.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func newKey(t *testing.T, name string) encryption.FileKey {
	t.Helper()
	fk, err := encryption.NewFileKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return fk
}

func keys(t *testing.T, fks ...encryption.FileKey) *encryption.Keys {
	t.Helper()
	k, err := encryption.New(encryption.File{Keys: fks}, "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func raw(t *testing.T, st store.Store, name string) []byte {
	t.Helper()
	kv, err := st.Get(context.Background(), store.SecretKey("default", name))
	if err != nil {
		t.Fatal(err)
	}
	return kv.Value
}

// TestEncryptionAtRest runs on the in-memory store and on real etcd: the
// compare-and-swap re-encryption relies on etcd's revisions.
func TestEncryptionAtRest(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   func(t *testing.T) store.Store
	}{
		{"memstore", func(*testing.T) store.Store { return memstore.New() }},
		{"etcd", func(t *testing.T) store.Store { return testenv.StartEtcd(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testEncryptionAtRest(t, tc.st(t)) })
	}
}

func testEncryptionAtRest(t *testing.T, st store.Store) {
	ctx := context.Background()
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")

	// Before encryption: a plain-text secret, as older kiln wrote it.
	if _, err := New(st, nil).Create(ctx, tlsSecret("legacy")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw(t, st, "legacy"), []byte(b64(keyPEM))) {
		t.Fatal("without keys the value should be plain JSON")
	}

	// Encryption on: new writes are sealed, the legacy value still reads.
	s1 := New(st, keys(t, k1))
	if _, err := s1.Create(ctx, tlsSecret("new")); err != nil {
		t.Fatal(err)
	}
	v := raw(t, st, "new")
	if encryption.KeyName(v) != "k1" || bytes.Contains(v, []byte(b64(keyPEM))) || bytes.Contains(v, []byte(b64("CERT-new"))) || bytes.Contains(v, []byte(k1.Secret)) {
		t.Fatalf("stored value is not sealed under k1: %.60q", v)
	}
	for _, name := range []string{"legacy", "new"} {
		got, err := s1.Get(ctx, "default", name)
		if err != nil || string(got.Data[corev1.TLSPrivateKeyKey]) != keyPEM {
			t.Fatalf("get %s: %v", name, err)
		}
	}
	upd := tlsSecret("new")
	upd.Data[corev1.TLSCertKey] = []byte("CERT-2")
	if _, err := s1.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if _, err := New(st, nil).Get(ctx, "default", "new"); !errors.Is(err, encryption.ErrDecrypt) || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("reading a sealed secret without keys: %v, want ErrDecrypt naming k1", err)
	}

	// Rotation: k2 first, k1 still readable; re-encrypt; drop k1.
	s2 := New(st, keys(t, k2, k1))
	res, err := s2.Reencrypt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewritten != 2 || res.Current != 0 || res.Before[""] != 1 || res.Before["k1"] != 1 {
		t.Fatalf("first pass: %+v", res)
	}
	if res, err = s2.Reencrypt(ctx); err != nil || res.Rewritten != 0 || res.Current != 2 {
		t.Fatalf("second pass: %+v %v, want nothing to do", res, err)
	}
	only2 := New(st, keys(t, k2))
	list, _, err := only2.List(ctx, "default")
	if err != nil || len(list) != 2 {
		t.Fatalf("list with the old key removed: %d %v", len(list), err)
	}
	for _, name := range []string{"legacy", "new"} {
		if n := encryption.KeyName(raw(t, st, name)); n != "k2" {
			t.Fatalf("%s sealed under %q after re-encryption, want k2", name, n)
		}
	}
	if got, _ := only2.Get(ctx, "default", "new"); string(got.Data[corev1.TLSCertKey]) != "CERT-2" {
		t.Fatal("re-encryption lost the update")
	}

	// A value no key opens stops the pass with the secret and key named.
	if _, err := New(st, keys(t, newKey(t, "k3"))).Reencrypt(ctx); !errors.Is(err, encryption.ErrDecrypt) || !strings.Contains(err.Error(), "default/legacy") || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("re-encrypt without the key in use: %v", err)
	}
}

// conflictOnce makes the first compare-and-swap lose, as if the apiserver
// updated the secret between re-encryption's read and write.
type conflictOnce struct {
	store.Store
	writerKeys *encryption.Keys // the concurrent writer's key file
	fired      bool
}

func (c *conflictOnce) Put(ctx context.Context, key string, value []byte, opts ...store.WriteOption) (int64, error) {
	if !c.fired && encryption.KeyName(value) == "k2" {
		c.fired = true
		sec := tlsSecret("s")
		sec.Data[corev1.TLSCertKey] = []byte("CONCURRENT")
		if _, err := New(c.Store, c.writerKeys).Update(ctx, sec); err != nil {
			return 0, err
		}
	}
	return c.Store.Put(ctx, key, value, opts...)
}

func TestReencryptKeepsConcurrentUpdate(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	// The concurrent writer still has only k1.
	st := &conflictOnce{Store: memstore.New(), writerKeys: keys(t, k1)}
	if _, err := New(st.Store, st.writerKeys).Create(ctx, tlsSecret("s")); err != nil {
		t.Fatal(err)
	}
	res, err := New(st, keys(t, k2, k1)).Reencrypt(ctx)
	if err != nil || res.Rewritten != 1 {
		t.Fatalf("reencrypt: %+v %v", res, err)
	}
	got, err := New(st, keys(t, k2)).Get(ctx, "default", "s")
	if err != nil || string(got.Data[corev1.TLSCertKey]) != "CONCURRENT" {
		t.Fatalf("after a lost race: %v %q, want the concurrent update kept under k2", err, got.Data[corev1.TLSCertKey])
	}
}
