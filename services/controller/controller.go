package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// Options configure the controller.
type Options struct {
	// Config is the live cluster configuration (config-domain,
	// config-network); nil uses Domain, for tests.
	Config ConfigSource
	// Domain shapes URLs when Config is nil.
	Domain resources.DomainConfig
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Controller runs the reconcilers while it leads.
type Controller struct {
	st   store.Store
	reg  *registry.Registry
	opts Options
	log  *slog.Logger
}

// New returns a controller.
func New(st store.Store, reg *registry.Registry, opts Options, log *slog.Logger) *Controller {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Domain = opts.Domain.WithDefaults()
	return &Controller{st: st, reg: reg, opts: opts, log: log.With("component", "controller")}
}

// key kinds in the work queue.
const (
	kService  = "service"
	kConfig   = "configuration"
	kRevision = "revision"
	kRoute    = "route"
)

type workKey struct{ kind, ns, name string }

func (k workKey) String() string { return k.kind + "/" + k.ns + "/" + k.name }

// Lead runs the reconcile loop until ctx ends; every write carries fence.
// One goroutine owns the queue: watches feed it, and it reconciles one key
// at a time once no event is waiting, so bursts collapse into one pass.
func (c *Controller) Lead(ctx context.Context, fence *store.Fence) error {
	events := make(chan store.Event, 256)
	prefixes := []string{
		store.RegistryListPrefix(v1.Group, v1.ResourceServices, ""),
		store.RegistryListPrefix(v1.Group, v1.ResourceConfigurations, ""),
		store.RegistryListPrefix(v1.Group, v1.ResourceRevisions, ""),
		store.RegistryListPrefix(v1.Group, v1.ResourceRoutes, ""),
		store.RegistryListPrefix(v1beta1.Group, v1beta1.ResourceDomainMapping, ""),
		store.InstancePrefix,
	}
	c.waitConfig(ctx)
	for _, p := range prefixes {
		go c.follow(ctx, p, events)
	}
	go c.followConfig(ctx, events)
	go c.resync(ctx, events)
	pending := map[workKey]struct{}{}
	var order []workKey
	add := func(k workKey) {
		if k.name == "" {
			return
		}
		if _, ok := pending[k]; !ok {
			pending[k] = struct{}{}
			order = append(order, k)
		}
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	var retryKeys []workKey
	w := &writer{c: c, fence: fence}
	for {
		if len(order) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case ev := <-events:
				for _, k := range c.keysFor(ctx, ev) {
					add(k)
				}
			case <-retry.C:
				for _, k := range retryKeys {
					add(k)
				}
				retryKeys = nil
			}
			continue
		}
		// Drain whatever else is already waiting before working.
	drain:
		for {
			select {
			case ev := <-events:
				for _, k := range c.keysFor(ctx, ev) {
					add(k)
				}
			default:
				break drain
			}
		}
		k := order[0]
		order = order[1:]
		delete(pending, k)
		more, err := c.reconcile(ctx, w, k)
		for _, m := range more {
			add(m)
		}
		if err != nil {
			if errors.Is(err, errdefs.ErrNotLeader) || ctx.Err() != nil {
				return err
			}
			if !errdefs.IsConflict(err) && !errdefs.IsAlreadyExists(err) {
				c.log.Warn("reconcile failed; will retry", "key", k.String(), "error", err)
			}
			retryKeys = append(retryKeys, k)
			retry.Reset(20 * time.Millisecond)
		}
	}
}

// follow lists prefix, feeds every key as a put, then watches from the next
// revision; after a watch error it lists again.
func (c *Controller) follow(ctx context.Context, prefix string, out chan<- store.Event) {
	for ctx.Err() == nil {
		kvs, rev, err := c.st.List(ctx, prefix)
		if err != nil {
			c.log.Warn("list failed", "prefix", prefix, "error", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, kv := range kvs {
			select {
			case out <- store.Event{Type: store.EventPut, KV: kv}:
			case <-ctx.Done():
				return
			}
		}
		for wr := range c.st.Watch(ctx, prefix, rev+1) {
			if wr.Err != nil {
				c.log.Warn("watch ended; re-listing", "prefix", prefix, "error", wr.Err)
				break
			}
			for _, ev := range wr.Events {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// keysFor maps a store event to the objects to reconcile.
func (c *Controller) keysFor(ctx context.Context, ev store.Event) []workKey {
	key := ev.KV.Key
	if strings.HasPrefix(key, store.InstancePrefix) {
		var in cluster.Instance
		if json.Unmarshal(ev.KV.Value, &in) != nil {
			return nil
		}
		return []workKey{{kRevision, in.Namespace, in.Revision}}
	}
	rest := strings.TrimPrefix(key, store.RegistryPrefix+v1.Group+"/")
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return nil
	}
	res, ns, name := parts[0], parts[1], parts[2]
	var labels map[string]string
	var m struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if json.Unmarshal(ev.KV.Value, &m) == nil {
		labels = m.Metadata.Labels
	}
	switch res {
	case v1.ResourceServices:
		// A deleted Service's children are found through their labels.
		return append([]workKey{{kService, ns, name}, {kConfig, ns, name}, {kRoute, ns, name}}, c.domainMappingKeys(ctx, ns, name)...)
	case v1.ResourceConfigurations:
		return []workKey{{kConfig, ns, name}, {kService, ns, labels[v1.ServiceLabelKey]}}
	case v1.ResourceRevisions:
		keys := []workKey{{kRevision, ns, name}, {kConfig, ns, labels[v1.ConfigurationLabelKey]}}
		routes, _, err := c.reg.Routes().List(ctx, ns)
		if err == nil {
			for _, r := range routes {
				keys = append(keys, workKey{kRoute, ns, r.Metadata.Name})
			}
		}
		return keys
	case v1.ResourceRoutes:
		return append([]workKey{{kRoute, ns, name}, {kService, ns, labels[v1.ServiceLabelKey]}}, c.domainMappingKeys(ctx, ns, name)...)
	case v1beta1.ResourceDomainMapping:
		return []workKey{{kDomainMapping, ns, name}}
	}
	return nil
}

func (c *Controller) reconcile(ctx context.Context, w *writer, k workKey) ([]workKey, error) {
	switch k.kind {
	case kService:
		return c.reconcileService(ctx, w, k.ns, k.name)
	case kConfig:
		return c.reconcileConfiguration(ctx, w, k.ns, k.name)
	case kRevision:
		return c.reconcileRevision(ctx, w, k.ns, k.name)
	case kRoute:
		return c.reconcileRoute(ctx, w, k.ns, k.name)
	case kDomainMapping:
		return c.reconcileDomainMapping(ctx, w, k.ns, k.name)
	}
	return nil, fmt.Errorf("unknown key kind %q", k.kind)
}

// writer carries the fence into every write.
type writer struct {
	c     *Controller
	fence *store.Fence
}

func (w *writer) opt() store.WriteOption { return store.WithFence(w.fence) }

func statusJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
