package controller

import (
	"context"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// ConfigSource is the live cluster configuration; *liveliveconfig.Watcher is one.
type ConfigSource interface {
	// Current returns the latest snapshot; never nil.
	Current() *config.Snapshot
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
	// Synced is closed once the stored configs have been read.
	Synced() <-chan struct{}
}

// domainConfig is the URL shape of route as the cluster configs say now:
// config-domain's domain for the route's labels (most specific selector
// first), config-network's domain and tag templates and external scheme.
// Without a ConfigSource (unit tests) Options.Domain applies.
func (c *Controller) domainConfig(route *v1.Route) resources.DomainConfig {
	if c.opts.Config == nil {
		return c.opts.Domain
	}
	snap := c.opts.Config.Current()
	nw := snap.Network()
	return resources.DomainConfig{
		Domain:         snap.Domain().DomainFor(route.Metadata.Labels),
		DomainTemplate: nw.DomainTemplate,
		TagTemplate:    nw.TagTemplate,
		Scheme:         nw.DefaultExternalScheme,
	}.WithDefaults()
}

// waitConfig holds the leader back until the stored configs are known, so
// it never publishes URLs from defaults only to change them a moment later.
func (c *Controller) waitConfig(ctx context.Context) {
	if c.opts.Config == nil {
		return
	}
	select {
	case <-c.opts.Config.Synced():
	case <-ctx.Done():
	}
}

// followConfig re-queues every Route whenever the cluster configs change, so
// a new domain, template or scheme reaches every URL without a restart. It
// feeds the routes as put events, exactly as a re-list would.
//
// The channel is taken before the snapshot is compared, so a change landing
// between two waits is never missed.
func (c *Controller) followConfig(ctx context.Context, out chan<- store.Event) {
	if c.opts.Config == nil {
		return
	}
	last := c.opts.Config.Current()
	for {
		changed := c.opts.Config.Changed()
		if cur := c.opts.Config.Current(); cur != last {
			kvs, _, err := c.st.List(ctx, store.RegistryListPrefix(v1.Group, v1.ResourceRoutes, ""))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Warn("list routes after a config change; retrying", "error", err)
				select {
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
					return
				}
				continue
			}
			last = cur
			for _, kv := range kvs {
				select {
				case out <- store.Event{Type: store.EventPut, KV: kv}:
				case <-ctx.Done():
					return
				}
			}
			if len(kvs) > 0 {
				c.log.Info("cluster config changed; reconciling routes", "routes", len(kvs))
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
