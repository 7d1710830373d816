package v1

import (
	"strings"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// An empty type defaults to Opaque, as in Kubernetes; an explicit type is
// kept, and the defaulted secret then validates by its type's rules.
func TestSecretDefaultsAndValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       Secret
		wantType string
		wantErr  string // substring of the validation error; "" for none
	}{{
		name:     "generic secret from kubectl create secret generic",
		in:       Secret{Metadata: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"a": "b"}},
		wantType: SecretTypeOpaque,
	}, {
		name:     "no type, no data",
		in:       Secret{Metadata: metav1.ObjectMeta{Name: "s"}},
		wantType: SecretTypeOpaque,
	}, {
		name:     "no type, bad key",
		in:       Secret{Metadata: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"a b": nil}},
		wantType: SecretTypeOpaque,
		wantErr:  "data[a b]",
	}, {
		name:     "explicit TLS still needs its pair",
		in:       Secret{Metadata: metav1.ObjectMeta{Name: "s"}, Type: SecretTypeTLS},
		wantType: SecretTypeTLS,
		wantErr:  "missing field(s): data[tls.crt], data[tls.key]",
	}, {
		name:     "explicit Opaque",
		in:       Secret{Metadata: metav1.ObjectMeta{Name: "s"}, Type: SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}},
		wantType: SecretTypeOpaque,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.in
			s.SetDefaults()
			if s.Type != tc.wantType || s.APIVersion != APIVersion || s.Kind != KindSecret {
				t.Fatalf("defaulted to type %q (%s %s), want %q", s.Type, s.APIVersion, s.Kind, tc.wantType)
			}
			for k, v := range tc.in.StringData {
				if string(s.Data[k]) != v || s.StringData != nil {
					t.Errorf("stringData[%s] not folded into data: %v", k, s.Data)
				}
			}
			err := s.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
