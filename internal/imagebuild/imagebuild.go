package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildGoImage compiles the Go main package in mainPkgDir as a static
// linux/amd64 binary and returns an OCI image holding only that binary, as
// /<base name of the directory> (/hello for deploy/samples/hello), with it
// as the entrypoint, PORT=8080 and 8080/tcp exposed.
func BuildGoImage(ctx context.Context, mainPkgDir string) (v1.Image, error) {
	dir, err := filepath.Abs(mainPkgDir)
	if err != nil {
		return nil, fmt.Errorf("build image from %q: %w", mainPkgDir, err)
	}
	binName := filepath.Base(dir)
	out, err := os.MkdirTemp("", "kiln-imagebuild-")
	if err != nil {
		return nil, fmt.Errorf("build image from %q: %w", dir, err)
	}
	defer os.RemoveAll(out)
	binPath := filepath.Join(out, binName)

	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", binPath, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w: %s", dir, err, b)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("read built binary: %w", err)
	}
	return imageFromBinary(binName, bin)
}

// imageFromBinary wraps one executable into a single-layer image.
func imageFromBinary(binName string, bin []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed mtime keeps the layer digest reproducible across builds of
	// the same binary.
	if err := tw.WriteHeader(&tar.Header{
		Name:     binName,
		Mode:     0o755,
		Size:     int64(len(bin)),
		Typeflag: tar.TypeReg,
		ModTime:  time.Unix(0, 0),
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = "amd64"
	cf.Config.Entrypoint = []string{"/" + binName}
	cf.Config.Env = []string{"PORT=8080"}
	cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// Push writes img to ref (e.g. 127.0.0.1:5000/hello:latest) over plain HTTP
// and returns the manifest digest ("sha256:...").
func Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// ServeRegistry serves an in-memory OCI registry on ln until the returned
// server is closed. Everything pushed is lost when the process exits.
func ServeRegistry(ln net.Listener) *http.Server {
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	return srv
}
