package commands

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/embedetcd"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
)

func runKilnd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := NewApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.RunContext(context.Background(), append([]string{"kilnd"}, args...))
	return out.String(), err
}

func mustKilnd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKilnd(t, args...)
	if err != nil {
		t.Fatalf("kilnd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestAdminKeyRotation walks the documented rotation on real etcd: create a
// key file, add a key, re-encrypt, remove the old key.
func TestAdminKeyRotation(t *testing.T) {
	srv, err := embedetcd.Start(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	st, err := etcdstore.Dial([]string{srv.Endpoint}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "keys.yaml")

	mustKilnd(t, "admin", "encryption-key", "create", "--name", "k1", file)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	if _, err := runKilnd(t, "admin", "encryption-key", "create", file); err == nil {
		t.Fatal("create over an existing key file succeeded")
	}
	k1, err := encryption.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	sec := func(name string) *corev1.Secret {
		return &corev1.Secret{Metadata: metav1.ObjectMeta{Namespace: "default", Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")}}
	}
	if _, err := secret.New(st, nil).Create(ctx, sec("plain")); err != nil {
		t.Fatal(err)
	}
	if _, err := secret.New(st, k1).Create(ctx, sec("sealed")); err != nil {
		t.Fatal(err)
	}

	mustKilnd(t, "admin", "encryption-key", "add", "--name", "k2", file)
	out := mustKilnd(t, "--etcd-endpoints", srv.Endpoint, "admin", "reencrypt-secrets", "--encryption-key-file", file)
	if !strings.Contains(out, `rewrote 2 secrets with key "k2", 0 already current (found k1: 1, plain text: 1)`) || !strings.Contains(out, "no secret needs k1") {
		t.Fatalf("reencrypt output:\n%s", out)
	}
	out = mustKilnd(t, "--etcd-endpoints", srv.Endpoint, "admin", "reencrypt-secrets", "--encryption-key-file", file)
	if !strings.Contains(out, "rewrote 0 secrets") {
		t.Fatalf("second run:\n%s", out)
	}
	if _, err := runKilnd(t, "admin", "encryption-key", "remove", file, "k2"); err == nil || !strings.Contains(err.Error(), "encrypts new writes") {
		t.Fatalf("removing the write key: %v", err)
	}
	mustKilnd(t, "admin", "encryption-key", "remove", file, "k1")

	k2, err := encryption.Load(file)
	if err != nil || strings.Join(k2.Names(), ",") != "k2" {
		t.Fatalf("key file after rotation: %v %v", k2.Names(), err)
	}
	kvs, _, err := st.List(ctx, store.SecretsPrefix)
	if err != nil || len(kvs) != 2 {
		t.Fatalf("list: %d %v", len(kvs), err)
	}
	for _, kv := range kvs {
		if encryption.KeyName(kv.Value) != "k2" {
			t.Fatalf("%s not under k2", kv.Key)
		}
	}
	if list, _, err := secret.New(st, k2).List(ctx, ""); err != nil || len(list) != 2 {
		t.Fatalf("read with only the new key: %d %v", len(list), err)
	}
}

// TestEnsureKeyFile: 'kilnd dev' creates its key file once and keeps it,
// since a new key on every start would strand the secrets sealed before.
func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "encryption-keys.yaml")
	if err := ensureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	if err := ensureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("second start replaced the key file")
	}
	if _, err := encryption.Load(path); err != nil {
		t.Fatal(err)
	}
}
