package controller

import (
	"context"

	"github.com/kiln-serving/kiln/api/config"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
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
func (r *reconciler) domainConfig(route *v1.Route) resources.DomainConfig {
	if r.opts.Config == nil {
		return r.opts.Domain
	}
	snap := r.opts.Config.Current()
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
