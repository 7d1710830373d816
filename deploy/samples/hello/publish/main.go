// Command publish builds the hello sample into a single-layer OCI image and
// pushes it to a registry over plain HTTP (the local registry `kilnd dev
// --registry-listen` serves). It prints the pushed reference with its digest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kiln-serving/kiln/internal/imagebuild"
)

func main() {
	src := flag.String("src", "./deploy/samples/hello", "directory of the sample's main package")
	ref := flag.String("ref", "127.0.0.1:5000/samples/hello:latest", "image reference to push to")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := imagebuild.BuildGoImage(ctx, *src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error: build sample image:", err)
		os.Exit(1)
	}
	digest, err := imagebuild.Push(ctx, img, *ref)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error: push sample image:", err)
		os.Exit(1)
	}
	fmt.Printf("pushed %s (%s)\n", *ref, digest)
}
