package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kcorev1 "github.com/kiln-serving/kiln/api/core/v1"
	"github.com/kiln-serving/kiln/api/errdefs"
	kmetav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// putConfigMap stores a ConfigMap as the apiserver does.
func putConfigMap(t *testing.T, st store.Store, ns, name string, data map[string]string) {
	t.Helper()
	b, err := json.Marshal(corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), store.ConfigMapKey(ns, name), b); err != nil {
		t.Fatal(err)
	}
}

// putSecret stores a Secret through the apiserver's secret store, sealed
// with keys.
func putSecret(t *testing.T, st store.Store, keys *encryption.Keys, ns, name string, data map[string]string) {
	t.Helper()
	s := &kcorev1.Secret{Metadata: kmetav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	s.SetDefaults()
	if _, err := secret.New(st, keys).Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func testKeys(t *testing.T) *encryption.Keys {
	t.Helper()
	k, err := encryption.NewFileKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := encryption.New(encryption.File{Keys: []encryption.FileKey{k}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// The agent reads ConfigMaps and sealed Secrets from the store.
func TestStoreObjects(t *testing.T) {
	st := memstore.New()
	keys := testKeys(t)
	putConfigMap(t, st, "ns", "cm", map[string]string{"a": "1"})
	putSecret(t, st, keys, "ns", "sec", map[string]string{"p": "s3cret"})
	objs := storeObjects{st: st, keys: keys}
	ctx := context.Background()
	if d, err := objs.ConfigMap(ctx, "ns", "cm"); err != nil || string(d["a"]) != "1" {
		t.Errorf("configmap: %q, %v", d, err)
	}
	if d, err := objs.Secret(ctx, "ns", "sec"); err != nil || string(d["p"]) != "s3cret" {
		t.Errorf("secret: %q, %v", d, err)
	}
	if _, err := objs.ConfigMap(ctx, "other", "cm"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != `configmap "cm" not found` {
		t.Errorf("configmap of another namespace: %v, want not found", err)
	}
	if _, err := objs.Secret(ctx, "ns", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing secret: %v, want not found", err)
	}
	if _, err := (storeObjects{st: st}).Secret(ctx, "ns", "sec"); err == nil {
		t.Error("a sealed secret opened without the key")
	}
}

// fakeObjects is an in-memory objectSource.
type fakeObjects map[string]map[string][]byte

func (f fakeObjects) get(kind, ns, name string) (map[string][]byte, error) {
	if d, ok := f[kind+"/"+ns+"/"+name]; ok {
		return d, nil
	}
	return nil, objectNotFound{kind: strings.ToLower(kind), name: name}
}

func (f fakeObjects) ConfigMap(_ context.Context, ns, name string) (map[string][]byte, error) {
	return f.get("ConfigMap", ns, name)
}

func (f fakeObjects) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	return f.get("Secret", ns, name)
}

func testObjects() fakeObjects {
	return fakeObjects{
		"ConfigMap/ns/cm": {"a": []byte("cm-a"), "b": []byte("cm-b"), "bad-name": []byte("x"), "world": []byte("from-cm")},
		"Secret/ns/sec":   {"a": []byte("sec-a"), "world": []byte("from-secret")},
	}
}

func TestResolveEnv(t *testing.T) {
	objs := testObjects()
	tests := []struct {
		name    string
		spec    envSpec
		want    []string
		wantErr string
	}{
		{name: "envFrom then env, env overrides, invalid names skipped",
			spec: envSpec{
				from:  []cluster.EnvFromSource{{ConfigMap: "cm"}, {Prefix: "S_", Secret: "sec"}},
				env:   map[string]string{"b": "literal"},
				order: []string{"b", "X"},
				refs:  map[string]cluster.EnvKeyRef{"X": {Secret: "sec", Key: "a"}},
			},
			want: []string{"a=cm-a", "b=literal", "bad-name=x", "world=from-cm", "S_a=sec-a", "S_world=from-secret", "X=sec-a"}},
		{name: "optional missing object and key are skipped",
			spec: envSpec{
				from:  []cluster.EnvFromSource{{ConfigMap: "nope", Optional: true}},
				order: []string{"A", "B"},
				refs: map[string]cluster.EnvKeyRef{
					"A": {ConfigMap: "cm", Key: "missing", Optional: true},
					"B": {Secret: "nope", Key: "k", Optional: true},
				},
			}},
		{name: "missing configmap", spec: envSpec{order: []string{"A"}, refs: map[string]cluster.EnvKeyRef{"A": {ConfigMap: "nope", Key: "k"}}},
			wantErr: `configmap "nope" not found`},
		{name: "missing secret in envFrom", spec: envSpec{from: []cluster.EnvFromSource{{Secret: "nope"}}},
			wantErr: `secret "nope" not found`},
		{name: "missing key", spec: envSpec{order: []string{"A"}, refs: map[string]cluster.EnvKeyRef{"A": {ConfigMap: "cm", Key: "k"}}},
			wantErr: "couldn't find key k in ConfigMap ns/cm"},
		{name: "missing secret key", spec: envSpec{order: []string{"A"}, refs: map[string]cluster.EnvKeyRef{"A": {Secret: "sec", Key: "k"}}},
			wantErr: "couldn't find key k in Secret ns/sec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveEnv(context.Background(), newObjectCache(objs, "ns"), tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, errConfig) {
					t.Fatalf("err = %v, want %q (errConfig)", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestVolumeFiles(t *testing.T) {
	objs := testObjects()
	tokens, err := loadTokenSigner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := func(v int32) *int32 { return &v }
	spec := cluster.InstanceSpec{Namespace: "ns"}
	tests := []struct {
		name    string
		vol     cluster.Volume
		want    map[string]os.FileMode // path → mode
		content map[string]string
		wantErr string
	}{
		{name: "every key of a configmap, default 0644",
			vol:  cluster.Volume{Name: "v", ConfigMap: &cluster.KeysVolume{Name: "cm"}},
			want: map[string]os.FileMode{"a": 0o644, "b": 0o644, "bad-name": 0o644, "world": 0o644}, content: map[string]string{"world": "from-cm"}},
		{name: "items with modes over defaultMode",
			vol: cluster.Volume{Name: "v", Secret: &cluster.KeysVolume{Name: "sec", DefaultMode: m(0o400),
				Items: []cluster.KeyToPath{{Key: "a", Path: "dir/x"}, {Key: "world", Path: "w", Mode: m(0o440)}}}},
			want: map[string]os.FileMode{"dir/x": 0o400, "w": 0o440}, content: map[string]string{"dir/x": "sec-a"}},
		{name: "optional missing secret: empty volume",
			vol:  cluster.Volume{Name: "v", Secret: &cluster.KeysVolume{Name: "nope", Optional: true}},
			want: map[string]os.FileMode{}},
		{name: "projected: later source wins, defaultMode for all",
			vol: cluster.Volume{Name: "v", Projected: &cluster.ProjectedVolume{DefaultMode: m(0o444), Sources: []cluster.Projection{
				{ConfigMap: &cluster.KeysVolume{Name: "cm", Items: []cluster.KeyToPath{{Key: "b", Path: "another"}, {Key: "world", Path: "world"}}}},
				{Secret: &cluster.KeysVolume{Name: "sec", Items: []cluster.KeyToPath{{Key: "world", Path: "world"}}}},
			}}},
			want: map[string]os.FileMode{"another": 0o444, "world": 0o444}, content: map[string]string{"another": "cm-b", "world": "from-secret"}},
		{name: "missing configmap", vol: cluster.Volume{Name: "v", ConfigMap: &cluster.KeysVolume{Name: "nope"}},
			wantErr: `MountVolume.SetUp failed for volume "v" : configmap "nope" not found`},
		{name: "missing key of items", vol: cluster.Volume{Name: "v", Secret: &cluster.KeysVolume{Name: "sec", Items: []cluster.KeyToPath{{Key: "k", Path: "k"}}}},
			wantErr: `MountVolume.SetUp failed for volume "v" : secret references non-existent secret key: k`},
		{name: "missing key of optional items is skipped", vol: cluster.Volume{Name: "v", ConfigMap: &cluster.KeysVolume{Name: "cm", Optional: true, Items: []cluster.KeyToPath{{Key: "k", Path: "k"}, {Key: "a", Path: "a"}}}},
			want: map[string]os.FileMode{"a": 0o644}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := volumeFiles(context.Background(), newObjectCache(objs, "ns"), tokens, spec, tc.vol, time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, errConfig) {
					t.Fatalf("err = %v, want %q (errConfig)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := writeVolumeFiles(dir, files); err != nil {
				t.Fatal(err)
			}
			got := map[string]os.FileMode{}
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					fi, _ := d.Info()
					rel, _ := filepath.Rel(dir, p)
					got[rel] = fi.Mode().Perm()
				}
				return err
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files %v, want %v", got, tc.want)
			}
			for p, want := range tc.content {
				if b, _ := os.ReadFile(filepath.Join(dir, p)); string(b) != want {
					t.Errorf("%s = %q, want %q", p, b, want)
				}
			}
		})
	}
}

// A projected token is a JWT the agent's published public key verifies,
// naming the service account, audience and expiry asked; the key survives
// an agent restart.
func TestServiceAccountToken(t *testing.T) {
	dir := t.TempDir()
	s, err := loadTokenSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	files, err := volumeFiles(context.Background(), newObjectCache(nil, "ns"), s, cluster.InstanceSpec{Namespace: "ns"},
		cluster.Volume{Name: "p", Projected: &cluster.ProjectedVolume{Sources: []cluster.Projection{
			{ServiceAccountToken: &cluster.TokenProjection{Audience: "api", Path: "token"}}}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	tok := string(files["token"].data)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not header.payload.signature", tok)
	}
	b, err := os.ReadFile(filepath.Join(dir, "signing-key.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifyToken(tok, pub.(*ecdsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "system:serviceaccount:ns:default" || !slices.Equal(c.Audience, []string{"api"}) || c.Issuer != tokenIssuer ||
		c.IssuedAt != now.Unix() || c.Expiry != now.Unix()+defaultTokenSeconds || c.Kubernetes.Namespace != "ns" || c.Kubernetes.ServiceAccount.Name != "default" {
		t.Errorf("claims %+v", c)
	}
	again, err := loadTokenSigner(dir)
	if err != nil || again.kid != s.kid || !again.key.Equal(s.key) {
		t.Errorf("the signing key changed on reload (%v)", err)
	}
	other, _ := loadTokenSigner(t.TempDir())
	if _, err := verifyToken(tok, &other.key.PublicKey); err == nil {
		t.Error("another agent's key verified the token")
	}
	tok2, _ := s.token("ns", "robot", "", 7200, now)
	if c, err := verifyToken(tok2, &s.key.PublicKey); err != nil || c.Subject != "system:serviceaccount:ns:robot" ||
		c.Expiry != now.Unix()+7200 || !slices.Equal(c.Audience, []string{defaultTokenAudience}) {
		t.Errorf("robot token claims %+v, %v", c, err)
	}
}

// An instance whose ConfigMap is missing fails with the kubelet's
// CreateContainerConfigError and never starts a container; once the
// ConfigMap exists the agent's retry starts it with the values in its
// environment and files.
func TestAgentConfigMapLater(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: secret and configMap volumes are tmpfs mounts")
	}
	e := newUnitEnv(t, false)
	e.run(t, e.cfg)
	spec := e.spec(t, "cfg-00001")
	spec.ContainerName = "user-container"
	spec.EnvOrder = []string{"GREETING"}
	spec.EnvRefs = map[string]cluster.EnvKeyRef{"GREETING": {ConfigMap: "cfg", Key: "greeting"}}
	spec.EnvFrom = []cluster.EnvFromSource{{ConfigMap: "cfg", Prefix: "CFG_"}}
	spec.Volumes = []cluster.Volume{{Name: "conf", ConfigMap: &cluster.KeysVolume{Name: "cfg"}}}
	spec.Mounts = []cluster.VolumeMount{{Volume: "conf", Path: "/etc/conf", ReadOnly: true}, {Volume: "conf", Path: "/greeting", SubPath: "greeting", ReadOnly: true}}
	e.place(t, "cfg-a", spec)
	inst := e.waitRecord(t, "cfg-a", "failed for its config", func(i cluster.Instance) bool { return i.Phase == cluster.PhaseFailed })
	if inst.Reason != reasonConfigError || inst.Message != `MountVolume.SetUp failed for volume "conf" : configmap "cfg" not found` {
		t.Errorf("record %s: %s, want %s with the missing ConfigMap", inst.Reason, inst.Message, reasonConfigError)
	}
	if e.node.has(containerID("cfg-a")) {
		t.Error("a container was started without its configuration")
	}

	putConfigMap(t, e.st, "default", "cfg", map[string]string{"greeting": "hi"})
	e.waitRecord(t, "cfg-a", "running once the ConfigMap exists", running)
	s, _ := e.node.spec(containerID("cfg-a"))
	if !slices.Contains(s.Env, "GREETING=hi") || !slices.Contains(s.Env, "CFG_greeting=hi") {
		t.Errorf("env %q lacks the ConfigMap's values", s.Env)
	}
	if len(s.Mounts) != 2 || !s.Mounts[0].ReadOnly || !s.Mounts[1].ReadOnly {
		t.Fatalf("mounts %+v, want two read-only", s.Mounts)
	}
	if b, err := os.ReadFile(filepath.Join(s.Mounts[0].Source, "greeting")); err != nil || string(b) != "hi" {
		t.Errorf("volume file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(s.Mounts[1].Source); err != nil || string(b) != "hi" {
		t.Errorf("subPath file: %q, %v", b, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.Mounts[0].Source, &st); err != nil || st.Type != 0x01021994 {
		t.Errorf("the volume is not on tmpfs (type %#x, %v)", st.Type, err)
	}
	vol := s.Mounts[0].Source
	e.unplace(t, "cfg-a")
	e.waitNoRecord(t, "cfg-a")
	testenv.Eventually(t, "volume removed", 0, func() bool {
		_, err := os.Stat(vol)
		return errors.Is(err, os.ErrNotExist)
	})
}

// verifyToken checks tok's ES256 signature with pub and returns its claims
// (what a service given signing-key.pub.pem does; the tests use it).
func verifyToken(tok string, pub *ecdsa.PublicKey) (tokenClaims, error) {
	var c tokenClaims
	enc := base64.RawURLEncoding
	i := len(tok) - 1
	for i >= 0 && tok[i] != '.' {
		i--
	}
	if i < 0 {
		return c, errors.New("not a JWT")
	}
	sig, err := enc.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		return c, errors.New("bad signature encoding")
	}
	sum := sha256.Sum256([]byte(tok[:i]))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return c, errors.New("signature does not verify")
	}
	j := 0
	for j < i && tok[j] != '.' {
		j++
	}
	payload, err := enc.DecodeString(tok[j+1 : i])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(payload, &c)
}
