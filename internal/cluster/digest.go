package cluster

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// DigestReference is the image a container runs, pinned: image's
// repository with digest (REPO@sha256:…), the form Knative records in a
// Revision's status.containerStatuses[].imageDigest. The repository is
// normalized as containerd's reference parser does (a bare "hello" is
// docker.io/library/hello; Knative's resolver, go-containerregistry,
// writes index.docker.io/library/hello instead). An image already given
// by digest is returned as written, as Knative keeps it. A bare digest
// (sha256:…) is the only form records had before; it is completed the
// same way.
func DigestReference(image, dgst string) (string, error) {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("parse image %q: %w", image, err)
	}
	if _, byDigest := named.(reference.Digested); byDigest {
		return image, nil
	}
	if i := strings.LastIndex(dgst, "@"); i >= 0 {
		dgst = dgst[i+1:]
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return "", fmt.Errorf("image %q digest %q: %w", image, dgst, err)
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), d)
	if err != nil {
		return "", fmt.Errorf("pin image %q to %q: %w", image, dgst, err)
	}
	return pinned.String(), nil
}
