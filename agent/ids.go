package agent

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/containerd/containerd/v2/pkg/identifiers"

	"github.com/kiln-serving/kiln/agent/runtime"
)

// hashedIDPrefix starts the containerd IDs made from a hash. Knative names
// are DNS labels and kiln joins them with "." only, so no readable ID has
// an underscore: a hashed ID never equals a readable one.
const hashedIDPrefix = "kiln_"

// containerID is the containerd ID of the container kiln calls readable
// (an instance name, or <instance>.<container> for the pod's others). It
// is readable itself when containerd accepts it; otherwise (a "--" in a
// Knative name, or longer than containerd's 76 characters) it is a stable
// hash of it. The Knative names stay in the container's labels, which is
// what a restarted agent adopts by (instanceOf).
func containerID(readable string) string {
	if identifiers.Validate(readable) == nil {
		return readable
	}
	sum := sha256.Sum256([]byte(readable))
	return hashedIDPrefix + hex.EncodeToString(sum[:20])
}

// instanceOf is the instance a serving container found in containerd runs,
// from its label; a container without one is known by its ID only.
func instanceOf(c runtime.Container) string {
	if n := c.Labels[labelInstance]; n != "" {
		return n
	}
	return c.ID
}
