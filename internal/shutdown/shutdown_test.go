package shutdown

import (
	"context"
	"testing"
)

func TestStopping(t *testing.T) {
	if Stopping(context.Background()) != nil {
		t.Fatal("a context without a server's signal has one")
	}
	c := make(chan struct{})
	ctx, cancel := context.WithCancel(With(context.Background(), c))
	defer cancel()
	s := Stopping(ctx)
	select {
	case <-s:
		t.Fatal("fired before the server stopped")
	default:
	}
	close(c)
	select {
	case <-s:
	default:
		t.Fatal("not fired after the server stopped")
	}
}
