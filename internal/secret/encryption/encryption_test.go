package encryption

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func keysOf(t *testing.T, names ...string) (*Keys, []FileKey) {
	t.Helper()
	var f File
	for _, n := range names {
		fk, err := NewFileKey(n)
		if err != nil {
			t.Fatal(err)
		}
		f.Keys = append(f.Keys, fk)
	}
	k, err := New(f, "test-keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return k, f.Keys
}

func mustKeys(t *testing.T, fks ...FileKey) *Keys {
	t.Helper()
	k, err := New(File{Keys: fks}, "test-keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const storeKey = "/kiln/secrets/default/tls"

var plain = []byte(`{"data":{"tls.key":"LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"}}`)

func TestOpen(t *testing.T) {
	k1, f1 := keysOf(t, "k1")
	_, f2 := keysOf(t, "k2")
	sealed1, err := k1.Seal(storeKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed1)
	tampered[len(tampered)-1] ^= 1
	sameNameOtherSecret := FileKey{Name: "k1", Secret: f2[0].Secret}

	cases := []struct {
		name        string
		keys        *Keys
		storeKey    string
		stored      []byte
		wantCurrent bool
		wantErr     string // substring; "" = success
	}{
		{name: "round trip", keys: k1, storeKey: storeKey, stored: sealed1, wantCurrent: true},
		{name: "old key still reads, not current", keys: mustKeys(t, f2[0], f1[0]), storeKey: storeKey, stored: sealed1},
		{name: "plain text legacy read", keys: k1, storeKey: storeKey, stored: plain},
		{name: "plain text without keys is current", keys: nil, storeKey: storeKey, stored: plain, wantCurrent: true},
		{name: "wrong secret under the key's name", keys: mustKeys(t, sameNameOtherSecret), storeKey: storeKey, stored: sealed1, wantErr: `key "k1" in test-keys.yaml does not authenticate`},
		{name: "tampered ciphertext", keys: k1, storeKey: storeKey, stored: tampered, wantErr: "does not authenticate"},
		{name: "moved to another store key", keys: k1, storeKey: "/kiln/secrets/default/other", stored: sealed1, wantErr: "does not authenticate"},
		{name: "unknown key id", keys: mustKeys(t, f2[0]), storeKey: storeKey, stored: sealed1, wantErr: `encrypted with key "k1", which is not in test-keys.yaml (keys: k2)`},
		{name: "sealed but no key file", keys: nil, storeKey: storeKey, stored: sealed1, wantErr: "no encryption key file is configured"},
		{name: "truncated", keys: k1, storeKey: storeKey, stored: []byte(Prefix + "k1:abc"), wantErr: "too short"},
		{name: "no key name", keys: k1, storeKey: storeKey, stored: []byte(Prefix + "k1"), wantErr: "malformed envelope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, current, err := tc.keys.Open(tc.storeKey, tc.stored)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrDecrypt) {
					t.Fatalf("err = %v, want ErrDecrypt containing %q", err, tc.wantErr)
				}
				if bytes.Contains([]byte(err.Error()), []byte("PRIVATE")) || strings.Contains(err.Error(), f1[0].Secret) {
					t.Fatalf("error leaks plain text or key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) || current != tc.wantCurrent {
				t.Fatalf("Open = %q current=%v, want plain current=%v", got, current, tc.wantCurrent)
			}
		})
	}
}

func TestSeal(t *testing.T) {
	k, fks := keysOf(t, "new", "old")
	a, err := k.Seal(storeKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(storeKey, plain)
	if !bytes.HasPrefix(a, []byte(Prefix+"new:")) || KeyName(a) != "new" {
		t.Fatalf("sealed value %q does not name the first key", a[:30])
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	if bytes.Contains(a, []byte("tls.key")) || bytes.Contains(a, []byte(fks[0].Secret)) {
		t.Fatal("sealed value holds plain text or the key")
	}
	var nilKeys *Keys
	if got, _ := nilKeys.Seal(storeKey, plain); !bytes.Equal(got, plain) || KeyName(got) != "" {
		t.Fatal("nil Keys must write plain text")
	}
}

// TestRotation walks the operator's steps: add a key first, rewrite what
// is not current, drop the old key.
func TestRotation(t *testing.T) {
	old, oldF := keysOf(t, "old")
	v, _ := old.Seal(storeKey, plain)
	nk, _ := NewFileKey("new")
	both := mustKeys(t, nk, oldF[0])
	got, current, err := both.Open(storeKey, v)
	if err != nil || current {
		t.Fatalf("after adding a key: current=%v err=%v, want stale and readable", current, err)
	}
	v, _ = both.Seal(storeKey, got)
	if KeyName(v) != "new" {
		t.Fatalf("rewrite sealed under %q", KeyName(v))
	}
	if _, current, err := mustKeys(t, nk).Open(storeKey, v); err != nil || !current {
		t.Fatalf("after removing the old key: current=%v err=%v", current, err)
	}
	// Order matters: appended (read-only) keys do not seal.
	if KeyName(mustSeal(t, mustKeys(t, oldF[0], nk))) != "old" {
		t.Fatal("only the first key seals")
	}
}

func mustSeal(t *testing.T, k *Keys) []byte {
	t.Helper()
	v, err := k.Seal(storeKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParse(t *testing.T) {
	good, _ := NewFileKey("a")
	cases := []struct {
		name, data, wantErr string
	}{
		{name: "yaml", data: "keys:\n- name: a\n  secret: " + good.Secret + "\n"},
		{name: "json", data: `{"keys":[{"name":"a","secret":"` + good.Secret + `"}]}`},
		{name: "empty", data: "keys: []\n", wantErr: "no keys"},
		{name: "short key", data: "keys:\n- name: a\n  secret: c2hvcnQ=\n", wantErr: `key "a": secret is 5 bytes, want 32`},
		{name: "not base64", data: "keys:\n- name: a\n  secret: '!!'\n", wantErr: "not base64"},
		{name: "colon in name", data: "keys:\n- name: 'a:b'\n  secret: " + good.Secret + "\n", wantErr: "keys[0].name"},
		{name: "duplicate", data: "keys:\n- name: a\n  secret: " + good.Secret + "\n- name: a\n  secret: " + good.Secret + "\n", wantErr: "listed twice"},
		{name: "unknown field", data: "keys:\n- name: a\n  secret: " + good.Secret + "\n  provider: x\n", wantErr: "provider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), "f.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("err = %v, want one naming f.yaml and containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	k1, _ := NewFileKey("k1")
	if err := WriteFile(path, File{Keys: []FileKey{k1}}, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, File{Keys: []FileKey{k1}}, true); err == nil {
		t.Fatal("exclusive write over an existing key file succeeded")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v (%v), want 0600", fi.Mode(), err)
	}
	k2, _ := NewFileKey("k2")
	if err := WriteFile(path, File{Keys: []FileKey{k2, k1}}, false); err != nil {
		t.Fatal(err)
	}
	k, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.Names(), ","); got != "k2,k1" || k.WriteKey() != "k2" {
		t.Fatalf("names %s write %s", got, k.WriteKey())
	}
}
