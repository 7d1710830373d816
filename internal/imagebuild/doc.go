// Package imagebuild turns a Go main package into a single-layer OCI image,
// pushes images to a registry over plain HTTP, and serves an in-memory
// registry. It exists for tests and the `kilnd dev` demo, which have no
// registry on the internet to pull from. It must never be used to build
// images in production paths, and it never talks to a docker daemon.
package imagebuild
