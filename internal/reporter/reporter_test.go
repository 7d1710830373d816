package reporter_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/reporter"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// fakeAutoscaler records what it receives; a non-leader refuses streams as
// the real one does.
type fakeAutoscaler struct {
	pb.UnimplementedAutoscalerServer
	leader bool

	mu      sync.Mutex
	batches []*pb.MetricBatch
	pokes   []*pb.PokeRequest
	got     chan struct{}
}

func (f *fakeAutoscaler) StreamMetrics(s grpc.ClientStreamingServer[pb.MetricBatch, pb.StreamMetricsResponse]) error {
	if !f.leader {
		return status.Error(codes.FailedPrecondition, "not the leader")
	}
	for {
		b, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&pb.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.batches = append(f.batches, b)
		f.mu.Unlock()
		select {
		case f.got <- struct{}{}:
		default:
		}
	}
}

func (f *fakeAutoscaler) Poke(_ context.Context, r *pb.PokeRequest) (*pb.PokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pokes = append(f.pokes, r)
	return &pb.PokeResponse{DesiredScale: 1}, nil
}

func serve(t *testing.T, leader bool) (*fakeAutoscaler, string) {
	t.Helper()
	f := &fakeAutoscaler{leader: leader, got: make(chan struct{}, 1)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterAutoscalerServer(gs, f)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return f, lis.Addr().String()
}

func (f *fakeAutoscaler) waitBatch(t *testing.T) *pb.MetricBatch {
	t.Helper()
	select {
	case <-f.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no batch arrived")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.batches[len(f.batches)-1]
}

func TestStreamsToTheLeaderAndFollowsChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, addr1 := serve(t, true)
	second, addr2 := serve(t, true)
	leaders := make(chan string, 1)
	leaders <- addr1
	collect := func(now time.Time) []*pb.Stat {
		return []*pb.Stat{{Namespace: "default", Revision: "hello-00001", PodName: "hello-00001-abc", AverageConcurrentRequests: 1.5,
			TimestampUnixNano: now.UnixNano()}}
	}
	c := reporter.New("agent/n1", func(context.Context) <-chan string { return leaders }, collect, 20*time.Millisecond, nil, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	b := first.waitBatch(t)
	if b.Source != "agent/n1" || len(b.Stats) != 1 || b.Stats[0].AverageConcurrentRequests != 1.5 {
		t.Fatalf("batch = %v", b)
	}
	if d, err := c.Poke(ctx, "default", "hello-00001", 3); err != nil || d != 1 {
		t.Fatalf("Poke = %d, %v", d, err)
	}
	leaders <- addr2
	second.waitBatch(t)
	if d, err := c.Poke(ctx, "default", "hello-00001", 1); err != nil || d != 1 {
		t.Fatalf("Poke after the change = %d, %v", d, err)
	}
	second.mu.Lock()
	if len(second.pokes) != 1 || second.pokes[0].Queued != 1 {
		t.Errorf("new leader's pokes = %v", second.pokes)
	}
	second.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A replica that is not the leader refuses the stream; the client keeps
// trying and reaches the leader once its address is announced.
func TestRefusedByNonLeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, stale := serve(t, false)
	leader, addr := serve(t, true)
	leaders := make(chan string, 1)
	leaders <- stale
	collect := func(time.Time) []*pb.Stat { return []*pb.Stat{{Namespace: "ns", Revision: "r"}} }
	c := reporter.New("activator/a", func(context.Context) <-chan string { return leaders }, collect, 10*time.Millisecond, nil, slog.New(slog.DiscardHandler))
	go c.Run(ctx)
	time.Sleep(100 * time.Millisecond)
	leaders <- addr
	if b := leader.waitBatch(t); b.Source != "activator/a" {
		t.Fatalf("batch = %v", b)
	}
}

// Poke without a known leader waits for one, and gives up with ctx.
func TestPokeWaitsForLeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, addr := serve(t, true)
	leaders := make(chan string, 1)
	leaders <- ""
	c := reporter.New("activator/a", func(context.Context) <-chan string { return leaders }, nil, 0, nil, slog.New(slog.DiscardHandler))
	go c.Run(ctx)

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := c.Poke(short, "ns", "r", 1); err == nil {
		t.Fatal("Poke without a leader succeeded")
	}
	res := make(chan error, 1)
	go func() { _, err := c.Poke(ctx, "ns", "r", 2); res <- err }()
	time.Sleep(20 * time.Millisecond)
	leaders <- addr
	if err := <-res; err != nil {
		t.Fatalf("Poke: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pokes) != 1 || f.pokes[0].Queued != 2 {
		t.Errorf("pokes = %v", f.pokes)
	}
}
