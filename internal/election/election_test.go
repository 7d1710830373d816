package election_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/election"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// Two candidates: only one leads; when the leader's session dies the
// standby takes over, and the old leader's fence can no longer write.
func TestFailoverAndFencing(t *testing.T) {
	st := testenv.StartEtcd(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type term struct {
		who   string
		fence *store.Fence
	}
	terms := make(chan term, 4)
	var leading atomic.Int32
	run := func(who string) {
		election.Run(ctx, st.Client(), election.Config{Role: "test", Identity: who, TTL: time.Second}, log,
			func(lctx context.Context, f *store.Fence) error {
				// After a revoke the old leader may still be inside its
				// term until its keepalive notices; the fence, not this
				// counter, is what keeps it from acting.
				leading.Add(1)
				if _, err := st.Put(lctx, "/kiln/test/owned", []byte(who), store.WithFence(f)); err != nil {
					t.Errorf("%s: fenced write while leading: %v", who, err)
				}
				terms <- term{who, f}
				<-lctx.Done()
				return nil
			})
	}
	go run("a")
	first := <-terms
	go run("b")
	select {
	case tm := <-terms:
		t.Fatalf("%s became leader while %s leads", tm.who, first.who)
	case <-time.After(1500 * time.Millisecond):
	}
	// Kill the leader's session: revoke the lease behind its election key.
	kv, err := st.Get(ctx, first.fence.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeLease(ctx, kv.Lease); err != nil {
		t.Fatal(err)
	}
	var second term
	for second.who == "" || second.who == first.who {
		select {
		case second = <-terms:
		case <-ctx.Done():
			t.Fatal("standby never took over")
		}
	}
	_, err = st.Put(ctx, "/kiln/test/owned", []byte("stale"), store.WithFence(first.fence))
	if !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	got, _ := st.Get(ctx, "/kiln/test/owned")
	if string(got.Value) != second.who {
		t.Fatalf("owned = %q, want %q", got.Value, second.who)
	}
}

func TestLeaderAndObserve(t *testing.T) {
	st := testenv.StartEtcd(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := election.Leader(ctx, st.Client(), "obs"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("no leader yet: %v", err)
	}
	obs := election.Observe(ctx, st.Client(), "obs")
	if v := <-obs; v != "" {
		t.Fatalf("first observation %q, want empty", v)
	}
	lctx, lcancel := context.WithCancel(ctx)
	go election.Run(lctx, st.Client(), election.Config{Role: "obs", Identity: "10.0.0.1:8090", TTL: time.Second}, log,
		func(ctx context.Context, _ *store.Fence) error { <-ctx.Done(); return nil })
	if v := <-obs; v != "10.0.0.1:8090" {
		t.Fatalf("observed %q", v)
	}
	if v, err := election.Leader(ctx, st.Client(), "obs"); err != nil || v != "10.0.0.1:8090" {
		t.Fatalf("Leader = %q, %v", v, err)
	}
	lcancel()
	if v := <-obs; v != "" {
		t.Fatalf("after resign observed %q", v)
	}
}
