package agent

import (
	"context"
	"sync"

	"github.com/kiln-serving/kiln/agent/runtime"
)

// maxPins bounds the pins kept; past it they are all dropped and rebuilt
// on demand (a pin only saves a registry round trip).
const maxPins = 4096

// imagePins remembers, per revision and image reference, the image the
// revision's first instance on this node resolved. Knative resolves a tag
// to a digest once per revision so that every instance runs the same
// image; pinning gives the same guarantee on this node, and keeps the
// registry off the cold-start path (a tag is otherwise resolved against
// its registry on every start).
type imagePins struct {
	mu sync.Mutex
	m  map[pinKey]runtime.Image
}

type pinKey struct{ namespace, revision, ref string }

// ensureImage returns the pinned image of ref for ns/rev when containerd
// still has it unpacked, and otherwise resolves (and pins) it.
func (a *Agent) ensureImage(ctx context.Context, ns, rev, ref string) (runtime.Image, error) {
	k := pinKey{ns, rev, ref}
	a.pins.mu.Lock()
	img, ok := a.pins.m[k]
	a.pins.mu.Unlock()
	if ok && a.rt.Unpacked(ctx, img) {
		return img, nil
	}
	img, err := a.rt.EnsureImage(ctx, ref)
	if err != nil {
		return img, err
	}
	a.pins.mu.Lock()
	if a.pins.m == nil || len(a.pins.m) >= maxPins {
		a.pins.m = map[pinKey]runtime.Image{}
	}
	a.pins.m[k] = img
	a.pins.mu.Unlock()
	return img, nil
}
