package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

// LeadFunc is the work a leader does. It must return soon after ctx ends
// (the process lost leadership or is shutting down) and make every write with
// store.WithFence(fence).
type LeadFunc func(ctx context.Context, fence *store.Fence) error

// Config names the candidate.
type Config struct {
	Role     string        // required: "controller", "scheduler", "autoscaler"
	Identity string        // required: unique per process, e.g. hostname-pid
	TTL      time.Duration // session TTL, whole seconds; default DefaultTTL. A dead leader is replaced after about this long.
}

// DefaultTTL is the session TTL when Config.TTL is zero: a crashed leader's
// successor takes over within about two seconds. etcd may raise a TTL below
// its minimum (1.5 election timeouts, 1.5s with its defaults).
const DefaultTTL = 2 * time.Second

// Run campaigns for cfg.Role and runs lead while this process leads,
// campaigning again after losing. It returns when ctx ends.
func Run(ctx context.Context, c *clientv3.Client, cfg Config, log *slog.Logger, lead LeadFunc) error {
	if cfg.Role == "" || cfg.Identity == "" {
		return errors.New("election: role and identity are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	log = log.With("component", "election", "role", cfg.Role, "identity", cfg.Identity)
	for ctx.Err() == nil {
		err := runOnce(ctx, c, cfg, log, lead)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("leadership term ended", "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func runOnce(ctx context.Context, c *clientv3.Client, cfg Config, log *slog.Logger, lead LeadFunc) error {
	sess, err := concurrency.NewSession(c, concurrency.WithTTL(int(cfg.TTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	defer sess.Close()
	e := concurrency.NewElection(sess, store.ElectionKey(cfg.Role))
	if err := e.Campaign(ctx, cfg.Identity); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	fence := &store.Fence{Key: e.Key(), Rev: e.Rev()}
	log.Info("became leader", "key", fence.Key, "rev", fence.Rev)
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			log.Warn("session lost; stepping down")
			cancel()
		case <-leadCtx.Done():
		}
	}()
	err = lead(leadCtx, fence)
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	_ = e.Resign(rctx)
	log.Info("stepped down")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Leader returns the value (Identity) the current leader of role campaigned
// with. Errors: errdefs.ErrNotFound when nobody leads.
func Leader(ctx context.Context, c *clientv3.Client, role string) (string, error) {
	resp, err := c.Get(ctx, store.ElectionKey(role)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("leader of %s: %w: %v", role, errdefs.ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("leader of %s: %w", role, errdefs.ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// Observe streams the leader's value of role each time it changes, starting
// with the current one; "" means nobody leads. The channel closes when ctx
// ends.
func Observe(ctx context.Context, c *clientv3.Client, role string) <-chan string {
	out := make(chan string, 1)
	go func() {
		defer close(out)
		last := "\x00"
		// emit sends the leader if it changed and returns the revision it
		// was read at, so the watch starts right after it: a leader elected
		// between the read and the watch is not missed.
		emit := func() (int64, bool) {
			resp, err := c.Get(ctx, store.ElectionKey(role)+"/", clientv3.WithFirstCreate()...)
			if err != nil {
				return 0, ctx.Err() == nil
			}
			v := ""
			if len(resp.Kvs) > 0 {
				v = string(resp.Kvs[0].Value)
			}
			if v != last {
				last = v
				select {
				case out <- v:
				case <-ctx.Done():
					return 0, false
				}
			}
			return resp.Header.Revision, true
		}
		for ctx.Err() == nil {
			rev, ok := emit()
			if !ok {
				return
			}
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev+1))
			}
			wc := c.Watch(clientv3.WithRequireLeader(ctx), store.ElectionKey(role)+"/", opts...)
			for range wc {
				if _, ok := emit(); !ok {
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return out
}
