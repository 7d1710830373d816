package reporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// Leaders streams the autoscaler leader's address (host:port) each time it
// changes, starting with the current one; "" means nobody leads. The
// channel closes when ctx ends. election.Observe has this shape.
type Leaders func(ctx context.Context) <-chan string

// Collect returns the stats of the period ending at now. It is called once
// per period from one goroutine; an empty result sends nothing.
type Collect func(now time.Time) []*pb.Stat

// DefaultPeriod is Knative's reporting period.
const DefaultPeriod = time.Second

// ErrNoLeader is returned by Poke when no autoscaler leader is known.
var ErrNoLeader = errors.New("no autoscaler leader known")

// Client reports to the autoscaler leader.
type Client struct {
	source  string
	leaders Leaders
	collect Collect
	period  time.Duration
	log     *slog.Logger
	// creds is the transport credential to the autoscaler.
	creds grpc.DialOption

	mu   sync.Mutex
	addr string
	conn *grpc.ClientConn
	// changed is closed (and replaced) when the leader connection changes.
	changed chan struct{}
}

// New returns a client that sends as source ("agent/<node>" or
// "activator/<id>"). collect may be nil for a client that only pokes.
// period 0 means DefaultPeriod. creds is the transport credential to the
// autoscaler (mutual TLS, internal/mtls); nil means plain gRPC.
func New(source string, leaders Leaders, collect Collect, period time.Duration, creds grpc.DialOption, log *slog.Logger) *Client {
	if period <= 0 {
		period = DefaultPeriod
	}
	if creds == nil {
		creds = grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return &Client{source: source, leaders: leaders, collect: collect, period: period, creds: creds,
		log: log.With("component", "reporter"), changed: make(chan struct{})}
}

// Run follows the leader and, with a collect function, sends one batch per
// period until ctx ends. It returns nil then.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaders := c.leaders(ctx)
	defer c.setLeader("")

	var tick <-chan time.Time
	if c.collect != nil {
		t := time.NewTicker(c.period)
		defer t.Stop()
		tick = t.C
	}
	type metricStream struct {
		s      grpc.ClientStreamingClient[pb.MetricBatch, pb.StreamMetricsResponse]
		cancel context.CancelFunc
	}
	var stream *metricStream
	drop := func() {
		if stream != nil {
			stream.cancel()
			stream = nil
		}
	}
	defer func() { drop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case addr, ok := <-leaders:
			if !ok {
				return nil
			}
			drop()
			c.setLeader(addr)
		case now := <-tick:
			stats := c.collect(now)
			if len(stats) == 0 {
				continue
			}
			conn := c.current()
			if conn == nil {
				continue
			}
			if stream == nil {
				sctx, cancel := context.WithCancel(ctx)
				s, err := pb.NewAutoscalerClient(conn).StreamMetrics(sctx)
				if err != nil {
					cancel()
					c.log.Debug("open metrics stream", "error", err)
					continue
				}
				stream = &metricStream{s: s, cancel: cancel}
			}
			if err := stream.s.Send(&pb.MetricBatch{Source: c.source, Stats: stats}); err != nil {
				// The real reason comes with the stream's status.
				_, err = stream.s.CloseAndRecv()
				c.logSendError(err)
				drop()
			}
		}
	}
}

func (c *Client) logSendError(err error) {
	if status.Code(err) == codes.FailedPrecondition {
		c.log.Debug("autoscaler is not the leader; waiting for the new one", "error", err)
		return
	}
	c.log.Debug("metrics stream failed", "error", err)
}

// setLeader replaces the connection to the leader. Connecting starts at
// once, so the first Poke of a cold start finds it warm.
func (c *Client) setLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == c.addr && (c.conn != nil || addr == "") {
		return
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.addr = addr
	if addr != "" {
		conn, err := grpc.NewClient("passthrough:///"+addr, c.creds)
		if err != nil {
			c.log.Warn("bad autoscaler address", "address", addr, "error", err)
		} else {
			conn.Connect()
			c.conn = conn
			c.log.Info("autoscaler leader", "address", addr)
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) current() *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// Poke tells the leader that queued requests wait for ns/rev and returns
// the desired scale it answered. Without a known leader it waits for one
// until ctx ends. Errors: ErrNoLeader (ctx ended first) or the RPC's error.
func (c *Client) Poke(ctx context.Context, ns, rev string, queued int) (int32, error) {
	for {
		c.mu.Lock()
		conn, changed := c.conn, c.changed
		c.mu.Unlock()
		if conn != nil {
			resp, err := pb.NewAutoscalerClient(conn).Poke(ctx, &pb.PokeRequest{Namespace: ns, Revision: rev, Queued: int32(queued)},
				grpc.WaitForReady(true))
			if err != nil {
				return 0, fmt.Errorf("poke autoscaler for %s/%s: %w", ns, rev, err)
			}
			return resp.GetDesiredScale(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, fmt.Errorf("poke autoscaler for %s/%s: %w", ns, rev, ErrNoLeader)
		}
	}
}
