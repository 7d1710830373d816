package testenv

import (
	"context"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

func TestStartContainerd(t *testing.T) {
	addr := StartContainerd(t)
	if len(addr) >= 100 {
		t.Errorf("socket path %q is %d bytes, want < 100", addr, len(addr))
	}
	c, err := containerd.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version == "" {
		t.Error("containerd reported an empty version")
	}
	t.Logf("containerd %s at %s", v.Version, addr)
}
