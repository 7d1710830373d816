package xds

import (
	"bytes"
	"context"
	"errors"
	"testing"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

// TestSecretDecoder: the SDS feed opens secrets the apiserver sealed, and
// drops (rather than serving garbage from) those it holds no key for.
func TestSecretDecoder(t *testing.T) {
	fk, err := encryption.NewFileKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := encryption.New(encryption.File{Keys: []encryption.FileKey{fk}}, "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pair := selfSigned(t, "example.com")
	st := memstore.New()
	ctx := context.Background()
	if _, err := secret.New(st, keys).Create(ctx, &corev1.Secret{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "cert"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: pair.Cert, corev1.TLSPrivateKeyKey: pair.Key}}); err != nil {
		t.Fatal(err)
	}
	kv, err := st.Get(ctx, store.SecretKey("default", "cert"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := secretDecoder(keys)(kv)
	if err != nil {
		t.Fatal(err)
	}
	if got.name != SecretName("default", "cert") || !bytes.Equal(got.tls.Cert, pair.Cert) || !bytes.Equal(got.tls.Key, pair.Key) {
		t.Fatalf("decoded %q, want the stored pair", got.name)
	}
	if _, err := secretDecoder(nil)(kv); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("without keys: %v, want ErrDecrypt", err)
	}

	// A secret created with no type (kubectl create secret generic) is
	// Opaque, even with tls.crt/tls.key data, and is not served to edges.
	untyped := &corev1.Secret{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "generic"},
		Data: map[string][]byte{corev1.TLSCertKey: pair.Cert, corev1.TLSPrivateKeyKey: pair.Key}}
	untyped.SetDefaults()
	if _, err := secret.New(st, keys).Create(ctx, untyped); err != nil {
		t.Fatal(err)
	}
	if kv, err = st.Get(ctx, store.SecretKey("default", "generic")); err != nil {
		t.Fatal(err)
	}
	if got, err := secretDecoder(keys)(kv); err == nil {
		t.Fatalf("Opaque secret decoded for edges as %q", got.name)
	}
}
