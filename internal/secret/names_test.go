package secret

import (
	"context"
	"errors"
	"testing"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

// Names that are not DNS-1123 labels never reach a store key: "a/b" in
// namespace "x" and "b" in namespace "x/a" would otherwise share one.
func TestNamesAreLabels(t *testing.T) {
	s := New(memstore.New(), nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		ns, nm string
		ok     bool
	}{
		{"plain", "default", "tls-cert", true},
		{"digits", "ns1", "0cert", true},
		{"slash in name", "x", "a/b", false},
		{"slash in namespace", "x/a", "b", false},
		{"dot dot", "default", "..", false},
		{"dot dot path", "default", "../other/cert", false},
		{"dot", "default", "a.b", false},
		{"upper", "default", "Cert", false},
		{"empty name", "default", "", false},
		{"empty namespace", "", "cert", false},
		{"too long", "default", string(make([]byte, 64)), false},
		{"64 chars", "default", "a123456789012345678901234567890123456789012345678901234567890123", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkNames(tc.ns, tc.nm)
			if (err == nil) != tc.ok {
				t.Fatalf("checkNames(%q, %q) = %v, want ok=%v", tc.ns, tc.nm, err, tc.ok)
			}
			if tc.ok {
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not ErrInvalidArgument", err)
			}
			sec := &corev1.Secret{Type: corev1.SecretTypeTLS}
			sec.Metadata.Namespace, sec.Metadata.Name = tc.ns, tc.nm
			if _, err := s.Create(ctx, sec); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Create: %v", err)
			}
			if _, err := s.Get(ctx, tc.ns, tc.nm); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Get: %v", err)
			}
			if err := s.Delete(ctx, tc.ns, tc.nm); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Delete: %v", err)
			}
		})
	}
	if _, _, err := s.List(ctx, ""); err != nil {
		t.Fatalf("List of all namespaces: %v", err)
	}
	if _, _, err := s.List(ctx, "a/b"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("List(a/b): %v", err)
	}
}
