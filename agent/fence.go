package agent

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kiln-serving/kiln/agent/runtime"
)

// StopInstance stops the running containers of instance in containerd's
// namespace at address (SIGTERM, then SIGKILL after the usual grace),
// leaving the containers for the next agent to remove. A queue-proxy
// process calls it when it fences itself: its agent has been gone for
// longer than the node lease, the cluster runs the instance elsewhere, and
// this node must not run it any more.
func StopInstance(ctx context.Context, address, namespace, instance string, log *slog.Logger) error {
	rt, err := runtime.New(address, namespace, nil, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	cs, err := rt.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, c := range cs {
		if instanceOf(c) != instance || !c.Running {
			continue
		}
		n++
		if err := rt.StopTask(ctx, c.ID, stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	log.Warn("fenced instance's containers stopped", "instance", instance, "containers", n, "errors", len(errs))
	return errors.Join(errs...)
}
