package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/agent"
	"github.com/kiln-serving/kiln/agent/queue"
	"github.com/kiln-serving/kiln/internal/mtls"
)

// --- queue ---

var queueFlags = []cli.Flag{
	&cli.StringFlag{Name: "instance", Usage: "instance this queue-proxy fronts (required)"},
	&cli.StringFlag{Name: "target", Usage: "host:port of the instance's serving container (required)"},
	&cli.Int64Flag{Name: "container-concurrency", Usage: "requests forwarded at once at most; 0 for unlimited"},
	&cli.DurationFlag{Name: "timeout", Usage: "bound of each request, queueing included (the revision's timeoutSeconds)", Value: 300 * time.Second},
	&cli.DurationFlag{Name: "response-start-timeout", Usage: "time to a response's first byte; 0 for none"},
	&cli.DurationFlag{Name: "idle-timeout", Usage: "time between a response's writes; 0 for none"},
	&cli.BoolFlag{Name: "h2c", Usage: "speak HTTP/2 cleartext to the container (a serving port named h2c)"},
	&cli.DurationFlag{Name: "drain-delay", Usage: "how long a drain keeps serving after the probe turned not ready"},
	&cli.StringFlag{Name: "control-socket", Usage: "unix socket of the control API the agent calls (required)"},
	&cli.DurationFlag{Name: "fence-timeout", Usage: "without any control request for this long the agent is taken to be gone past its node lease: stop accepting, finish requests in flight and exit (the agent passes its node lease TTL)", Value: agent.DefaultLeaseTTL},
	&cli.StringFlag{Name: "containerd-address", Usage: "containerd socket of the instance's containers: a fenced queue-proxy stops them (with --containerd-namespace; none stopped when empty)"},
	&cli.StringFlag{Name: "containerd-namespace", Usage: "containerd namespace of the instance's containers"},
	&cli.IntFlag{Name: "listen-fd", Usage: "inherited file descriptor of the listener to serve on (how the agent hands over a port from its pool); 0 for none"},
	&cli.StringFlag{Name: "listen", Usage: "host:port to serve on, instead of --listen-fd"},
}

// queueOptions is kilnd queue's configuration, from its flags.
type queueOptions struct {
	proxy   queue.Config
	control queue.ControlConfig
	socket  string
	// containerd and namespace find the instance's containers, which a
	// fenced queue-proxy stops; empty: it stops none.
	containerd, namespace string
}

var queueCommand = &cli.Command{
	Name:  "queue",
	Usage: "serve one instance's queue-proxy; started by the agent, one process per instance, so instances keep serving while the agent restarts",
	Flags: withTLSFlags(queueFlags),
	Action: func(c *cli.Context) error {
		log, err := logger(c)
		if err != nil {
			return err
		}
		opts, err := queueConfig(c)
		if err != nil {
			return err
		}
		log = log.With("role", "queue", "instance", opts.control.Instance)
		ln, err := queueListener(c)
		if err != nil {
			return err
		}
		ctx, cancel := signalContext(c.Context)
		defer cancel()
		return runQueue(ctx, opts, ln, log)
	},
}

// queueConfig reads kilnd queue's flags; a missing or bad one is an error
// naming it.
func queueConfig(c *cli.Context) (queueOptions, error) {
	var o queueOptions
	for _, f := range []string{"instance", "target", "control-socket"} {
		if c.String(f) == "" {
			return o, fmt.Errorf("--%s is required", f)
		}
	}
	if _, _, err := net.SplitHostPort(c.String("target")); err != nil {
		return o, fmt.Errorf("--target %q: want host:port", c.String("target"))
	}
	for _, f := range []string{"response-start-timeout", "idle-timeout", "drain-delay"} {
		if c.Duration(f) < 0 {
			return o, fmt.Errorf("--%s %v: must not be negative", f, c.Duration(f))
		}
	}
	if c.Duration("timeout") <= 0 {
		return o, fmt.Errorf("--timeout %v: must be positive", c.Duration("timeout"))
	}
	if c.Duration("fence-timeout") <= 0 {
		return o, fmt.Errorf("--fence-timeout %v: must be positive", c.Duration("fence-timeout"))
	}
	if c.Int64("container-concurrency") < 0 {
		return o, fmt.Errorf("--container-concurrency %d: must not be negative", c.Int64("container-concurrency"))
	}
	tf, err := roleTLS(c)
	if err != nil {
		return o, err
	}
	tlsCfg, err := mtls.ServerTLS(tf)
	if err != nil {
		return o, err
	}
	o.proxy = queue.Config{
		Target:               c.String("target"),
		ContainerConcurrency: c.Int64("container-concurrency"),
		Timeout:              c.Duration("timeout"),
		ResponseStart:        c.Duration("response-start-timeout"),
		Idle:                 c.Duration("idle-timeout"),
		H2C:                  c.Bool("h2c"),
		DrainDelay:           c.Duration("drain-delay"),
		TLS:                  tlsCfg,
		Check:                agent.QueueCallers,
	}
	o.control = queue.ControlConfig{Instance: c.String("instance"), Target: c.String("target"),
		Fence: c.Duration("fence-timeout"), DrainTimeout: c.Duration("timeout")}
	o.socket = c.String("control-socket")
	if addr, ns := c.String("containerd-address"), c.String("containerd-namespace"); addr != "" || ns != "" {
		if addr == "" || ns == "" {
			return o, errors.New("--containerd-address and --containerd-namespace: give both or neither")
		}
		o.containerd, o.namespace = addr, ns
	}
	return o, nil
}

// queueListener is the inherited --listen-fd or a new --listen listener.
func queueListener(c *cli.Context) (net.Listener, error) {
	fd, addr := c.Int("listen-fd"), c.String("listen")
	switch {
	case fd != 0 && addr != "":
		return nil, errors.New("--listen-fd and --listen: give one")
	case fd > 0:
		f := os.NewFile(uintptr(fd), "queue-listener")
		if f == nil {
			return nil, fmt.Errorf("--listen-fd %d: not an open file", fd)
		}
		defer f.Close()
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("--listen-fd %d: %w", fd, err)
		}
		return ln, nil
	case fd < 0:
		return nil, fmt.Errorf("--listen-fd %d: must be positive", fd)
	case addr != "":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", addr, err)
		}
		return ln, nil
	}
	return nil, errors.New("--listen-fd or --listen is required")
}

// runQueue serves one queue-proxy on ln under the control of its agent
// (queue.RunControlled) until drained, stopped, fenced or ctx ends. The
// control socket is removed when it returns.
func runQueue(ctx context.Context, o queueOptions, ln net.Listener, log *slog.Logger) error {
	defer ln.Close()
	p, err := queue.New(o.proxy, log)
	if err != nil {
		return err
	}
	ctl, err := queue.ListenControl(o.socket)
	if err != nil {
		return fmt.Errorf("--control-socket: %w", err)
	}
	if mine, err := os.Stat(o.socket); err == nil {
		// A queue-proxy started after this one for the same instance
		// has its own socket file there: leave that one alone.
		defer func() {
			if now, err := os.Stat(o.socket); err == nil && os.SameFile(mine, now) {
				_ = os.Remove(o.socket)
			}
		}()
	}
	if o.containerd != "" {
		o.control.OnFence = func(ctx context.Context) error {
			return agent.StopInstance(ctx, o.containerd, o.namespace, o.control.Instance, log)
		}
	}
	log.Info("queue-proxy serving", "address", ln.Addr().String(), "target", o.proxy.Target,
		"control_socket", o.socket, "fence_timeout", o.control.Fence.String(), "pid", os.Getpid())
	return queue.RunControlled(ctx, p, ln, ctl, o.control, log)
}
