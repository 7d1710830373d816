package autoscaler

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// errNotLeader is what a replica that does not lead answers; senders
// re-resolve the leader (election.Observe) on FAILED_PRECONDITION.
var errNotLeader = status.Error(codes.FailedPrecondition, "this autoscaler replica is not the leader")

// server is the gRPC face of an Autoscaler.
type server struct {
	pb.UnimplementedAutoscalerServer
	a *Autoscaler
}

// Register adds the Autoscaler gRPC service to s. Every replica serves
// it; only the leader acts.
func (a *Autoscaler) Register(s grpc.ServiceRegistrar) {
	pb.RegisterAutoscalerServer(s, &server{a: a})
}

// Serve serves the Autoscaler gRPC service on lis until ctx ends, and
// returns once the server has stopped. opts carry its transport
// credentials and caller checks (internal/mtls); none serves plain gRPC.
func (a *Autoscaler) Serve(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	s := grpc.NewServer(opts...)
	a.Register(s)
	// stop ends when ctx does or the server fails on its own.
	stop, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error {
		<-stop.Done()
		// Metric streams never end by themselves: give calls in flight a
		// moment, then cut the streams.
		done := make(chan struct{})
		go func() { s.GracefulStop(); close(done) }()
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.Stop()
			<-done
		}
		return nil
	})
	g.Go(func() error {
		defer cancel()
		err := s.Serve(lis)
		if ctx.Err() != nil || errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return err
	})
	return g.Wait()
}

// StreamMetrics records every batch into the leader's windows. A replica
// that does not lead (or stops leading mid-stream) ends the stream with
// FAILED_PRECONDITION.
func (s *server) StreamMetrics(stream grpc.ClientStreamingServer[pb.MetricBatch, pb.StreamMetricsResponse]) error {
	for {
		b, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		if err := sourceAllowed(stream.Context(), b.GetSource()); err != nil {
			return err
		}
		if id, ok := mtls.IdentityFrom(stream.Context()); ok && id.Role == pki.RoleAgent {
			b = s.a.ownStats(b, id.Name)
		}
		t := s.a.term.Load()
		if t == nil {
			return errNotLeader
		}
		t.coll.recordBatch(b, s.a.now(), s.a.log)
	}
}

// sourceAllowed refuses a batch whose source is not its verified sender:
// an agent reports only as agent/<its node> and an activator only as an
// activator, so one node's certificate cannot speak for another node's
// instances. On a plain listener there is no identity and nothing to check.
func sourceAllowed(ctx context.Context, source string) error {
	id, ok := mtls.IdentityFrom(ctx)
	if !ok {
		return nil
	}
	switch id.Role {
	case pki.RoleAgent:
		if id.Name != "" && source == pki.RoleAgent+"/"+id.Name {
			return nil
		}
	case pki.RoleActivator:
		if strings.HasPrefix(source, pki.RoleActivator+"/") {
			return nil
		}
	}
	return status.Errorf(codes.PermissionDenied, "%s may not report metrics as %q", id, source)
}

// CallerCheck admits the roles that send metrics and pokes.
var CallerCheck = pki.Allow(pki.RoleAgent, pki.RoleActivator)

// Poke wakes a revision at zero and answers the scale decided.
func (s *server) Poke(ctx context.Context, req *pb.PokeRequest) (*pb.PokeResponse, error) {
	if id, ok := mtls.IdentityFrom(ctx); ok && id.Role != pki.RoleActivator {
		// Only activators hold requests for revisions (every one of them).
		return nil, status.Errorf(codes.PermissionDenied, "%s may not poke revisions: only activators hold requests for them", id)
	}
	if req.GetNamespace() == "" || req.GetRevision() == "" {
		return nil, status.Error(codes.InvalidArgument, "namespace and revision are required")
	}
	t := s.a.term.Load()
	if t == nil {
		return nil, errNotLeader
	}
	p := pokeReq{key: RevisionKey{req.GetNamespace(), req.GetRevision()}, queued: req.GetQueued(), reply: make(chan pokeReply, 1)}
	select {
	case t.pokes <- p:
	case <-t.done:
		return nil, errNotLeader
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	select {
	case <-t.done:
		return nil, errNotLeader
	case r := <-p.reply:
		switch {
		case r.err == nil:
			return &pb.PokeResponse{DesiredScale: int32(r.desired)}, nil
		case errors.Is(r.err, errdefs.ErrNotFound):
			return nil, status.Error(codes.NotFound, r.err.Error())
		case errors.Is(r.err, errdefs.ErrNotLeader):
			return nil, errNotLeader
		default:
			return nil, status.Error(codes.Unavailable, r.err.Error())
		}
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}
