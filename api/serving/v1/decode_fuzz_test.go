package v1

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary documents to the manifest decoder, which
// reads whatever users and the API send. Decoding, defaulting and
// validating must never panic, validation must be deterministic, and a
// valid object must stay valid once encoded and decoded again (what the
// store does to it).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "corpus", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"a"},"spec":{"template":{"spec":{"containers":[{"image":"x","env":[{"name":"A=B"}],"resources":{"limits":{"cpu":"9E"}}}]}}}}`))
	f.Add([]byte("apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata:\n  name: r\n  annotations:\n    autoscaling.knative.dev/target: NaN\nspec:\n  containers:\n  - image: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := Decode(data)
		if err != nil {
			return
		}
		ctx := context.Background()
		obj.SetDefaults(ctx)
		fe := obj.Validate(ctx)
		if again := obj.Validate(ctx); fe.Error() != again.Error() {
			t.Fatalf("Validate is not deterministic:\n%v\n---\n%v", fe, again)
		}
		if fe != nil {
			return
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("marshal a valid object: %v", err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("a valid object does not decode again: %v\n%s", err, b)
		}
		back.SetDefaults(ctx)
		if fe := back.Validate(ctx); fe != nil {
			t.Fatalf("a valid object is invalid once re-encoded: %v\n%s", fe, b)
		}
	})
}
