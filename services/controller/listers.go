package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
)

// lister reads one kind from the leader's cache, Knative-style: no store
// round trip, and every object handed out is the caller's own copy, free to
// change.
type lister[T any] interface {
	// Get returns ns/name. Errors: errdefs.ErrNotFound.
	Get(ns, name string) (*T, error)
	// List returns the objects of ns, by name.
	List(ns string) []*T
}

// objects is a lister whose writes go to the store through the registry and
// are recorded in the cache as soon as they succeed, so the next reconcile
// never acts on a view older than the controller's own writes.
type objects[T any] interface {
	lister[T]
	// Create, Update and Delete are the registry's, with its errors
	// (errdefs.ErrAlreadyExists, ErrConflict, ErrNotFound, and ErrNotLeader
	// from the fence).
	Create(ctx context.Context, obj *T) (*T, error)
	Update(ctx context.Context, obj *T) (*T, error)
	Delete(ctx context.Context, ns, name string) error
}

// cached is objects over one store.Cache and a registry built on the
// fenced store.
type cached[T any] struct {
	typed *registry.Typed[T]
	cache *store.Cache[*T]
}

var _ objects[v1.Service] = (*cached[v1.Service])(nil)

func newCached[T any](typed *registry.Typed[T], log *slog.Logger) *cached[T] {
	return &cached[T]{typed: typed, cache: store.NewCache(typed.Prefix(""), typed.Decode, log)}
}

// clone deep-copies a cached object; the cache's own values are never
// handed out, since reconcilers change what they get.
func clone[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("clone %T: %v", v, err)) // our own types always marshal
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("clone %T: %v", v, err))
	}
	return out
}

func (c *cached[T]) Get(ns, name string) (*T, error) {
	v, ok := c.cache.Get(c.typed.Key(ns, name))
	if !ok {
		return nil, fmt.Errorf("%s %q in namespace %q: %w", c.typed.Kind(), name, ns, errdefs.ErrNotFound)
	}
	return clone(v), nil
}

func (c *cached[T]) List(ns string) []*T {
	prefix := c.typed.Prefix(ns)
	var keys []string
	c.cache.Range(func(k string, _ *T) bool {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return true
	})
	slices.Sort(keys)
	out := make([]*T, 0, len(keys))
	for _, k := range keys {
		v, _ := c.cache.Get(k)
		out = append(out, clone(v))
	}
	return out
}

func (c *cached[T]) observe(obj *T) {
	m := any(obj).(registry.Object).Meta()
	rev, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil {
		return // the watch brings it
	}
	c.cache.Observe(c.typed.Key(m.Namespace, m.Name), clone(obj), rev)
}

func (c *cached[T]) Create(ctx context.Context, obj *T) (*T, error) {
	out, err := c.typed.Create(ctx, obj)
	if err != nil {
		return nil, err
	}
	c.observe(out)
	return out, nil
}

func (c *cached[T]) Update(ctx context.Context, obj *T) (*T, error) {
	out, err := c.typed.Update(ctx, obj)
	if err != nil {
		return nil, err
	}
	c.observe(out)
	return out, nil
}

func (c *cached[T]) Delete(ctx context.Context, ns, name string) error {
	err := c.typed.Delete(ctx, ns, name)
	if err == nil || errdefs.IsNotFound(err) {
		c.cache.Forget(c.typed.Key(ns, name))
	}
	return err
}

// instanceLister answers which instances agents report for a revision.
type instanceLister interface {
	// ForRevision returns the instances of ns/revision in key order.
	ForRevision(ns, revision string) []cluster.Instance
}

type revID struct{ ns, name string }

// instanceIndex indexes the instance cache by revision, kept by the cache's
// change callback (a deleted instance's last value names its revision), so
// a revision's status never costs a scan of every instance.
type instanceIndex struct {
	byRev map[revID]map[string]cluster.Instance
}

var _ instanceLister = (*instanceIndex)(nil)

func newInstanceIndex() *instanceIndex {
	return &instanceIndex{byRev: map[revID]map[string]cluster.Instance{}}
}

func (x *instanceIndex) apply(ch store.Change[cluster.Instance]) {
	if ch.HadOld {
		id := revID{ch.Old.Namespace, ch.Old.Revision}
		delete(x.byRev[id], ch.Key)
		if len(x.byRev[id]) == 0 {
			delete(x.byRev, id)
		}
	}
	if !ch.Deleted {
		id := revID{ch.New.Namespace, ch.New.Revision}
		if x.byRev[id] == nil {
			x.byRev[id] = map[string]cluster.Instance{}
		}
		x.byRev[id][ch.Key] = ch.New
	}
}

func (x *instanceIndex) ForRevision(ns, revision string) []cluster.Instance {
	m := x.byRev[revID{ns, revision}]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]cluster.Instance, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// claim is a stored domain claim with the revision it was read at, for
// compare-and-swap deletes.
type claim struct {
	DomainClaim
	rev int64
}

func decodeClaim(kv store.KV) (claim, error) {
	var c claim
	if err := json.Unmarshal(kv.Value, &c.DomainClaim); err != nil {
		return claim{}, fmt.Errorf("decode claim %s: %w", kv.Key, err)
	}
	c.rev = kv.ModRevision
	return c, nil
}

// domainClaims is what the DomainMapping reconciler needs of domainclaims/.
type domainClaims interface {
	// Get returns the claim on domain from the cache.
	Get(domain string) (claim, bool)
	// Read returns the claim on domain from the store, when a write found
	// the cache behind. Errors: errdefs.ErrNotFound.
	Read(ctx context.Context, domain string) (claim, error)
	// Create claims domain for ns. Errors: errdefs.ErrAlreadyExists.
	Create(ctx context.Context, domain, ns string) error
	// Delete drops the claim if it is still at rev. Errors:
	// errdefs.ErrConflict, errdefs.ErrNotFound.
	Delete(ctx context.Context, domain string, rev int64) error
}

type claimStore struct {
	st    store.Store // fenced
	cache *store.Cache[claim]
}

var _ domainClaims = (*claimStore)(nil)

func (c *claimStore) Get(domain string) (claim, bool) {
	return c.cache.Get(store.DomainClaimKey(domain))
}

func (c *claimStore) Read(ctx context.Context, domain string) (claim, error) {
	kv, err := c.st.Get(ctx, store.DomainClaimKey(domain))
	if err != nil {
		return claim{}, err
	}
	cl, err := decodeClaim(kv)
	if err != nil {
		return claim{}, err
	}
	c.cache.Observe(kv.Key, cl, kv.ModRevision)
	return cl, nil
}

func (c *claimStore) Create(ctx context.Context, domain, ns string) error {
	dc := DomainClaim{Namespace: ns}
	b, _ := json.Marshal(dc)
	key := store.DomainClaimKey(domain)
	rev, err := c.st.Put(ctx, key, b, store.IfRevision(0))
	if err != nil {
		return err
	}
	c.cache.Observe(key, claim{DomainClaim: dc, rev: rev}, rev)
	return nil
}

func (c *claimStore) Delete(ctx context.Context, domain string, rev int64) error {
	key := store.DomainClaimKey(domain)
	err := c.st.Delete(ctx, key, store.IfRevision(rev))
	if err == nil || errdefs.IsNotFound(err) {
		c.cache.Forget(key)
	}
	return err
}
