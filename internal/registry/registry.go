package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/store"
)

// Object is a stored Knative object.
type Object interface {
	Meta() *metav1.ObjectMeta
}

// Registry gives typed access to the Knative kinds.
type Registry struct {
	st  store.Store
	now func() time.Time
}

// New returns a registry over st.
func New(st store.Store) *Registry { return &Registry{st: st, now: time.Now} }

// Store returns the underlying store.
func (r *Registry) Store() store.Store { return r.st }

// Services returns typed access to Services.
func (r *Registry) Services() *Typed[v1.Service] {
	return &Typed[v1.Service]{r: r, group: v1.Group, resource: v1.ResourceServices, apiVersion: v1.APIVersion, kind: v1.KindService}
}

// Configurations returns typed access to Configurations.
func (r *Registry) Configurations() *Typed[v1.Configuration] {
	return &Typed[v1.Configuration]{r: r, group: v1.Group, resource: v1.ResourceConfigurations, apiVersion: v1.APIVersion, kind: v1.KindConfiguration}
}

// Revisions returns typed access to Revisions.
func (r *Registry) Revisions() *Typed[v1.Revision] {
	return &Typed[v1.Revision]{r: r, group: v1.Group, resource: v1.ResourceRevisions, apiVersion: v1.APIVersion, kind: v1.KindRevision}
}

// Routes returns typed access to Routes.
func (r *Registry) Routes() *Typed[v1.Route] {
	return &Typed[v1.Route]{r: r, group: v1.Group, resource: v1.ResourceRoutes, apiVersion: v1.APIVersion, kind: v1.KindRoute}
}

// DomainMappings returns typed access to serving.knative.dev/v1beta1
// DomainMappings.
func (r *Registry) DomainMappings() *Typed[v1beta1.DomainMapping] {
	return &Typed[v1beta1.DomainMapping]{r: r, group: v1beta1.Group, resource: v1beta1.ResourceDomainMapping, apiVersion: v1beta1.APIVersion, kind: v1beta1.KindDomainMapping}
}

// EventType is the kind of change a watch reports.
type EventType string

const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change to an object, or Err when the watch ended.
type Event[T any] struct {
	Type     EventType
	Object   *T
	Revision int64
	Err      error
}

// Typed is access to one kind. T's pointer must implement Object.
type Typed[T any] struct {
	r                                 *Registry
	group, resource, apiVersion, kind string
}

// Kind returns the kind name (e.g. "Service").
func (c *Typed[T]) Kind() string { return c.kind }

// Resource returns the plural resource name (e.g. "services").
func (c *Typed[T]) Resource() string { return c.resource }

// Key returns the store key of ns/name.
func (c *Typed[T]) Key(ns, name string) string {
	return store.RegistryKey(c.group, c.resource, ns, name)
}

// Prefix returns the store prefix for a namespace ("" = all).
func (c *Typed[T]) Prefix(ns string) string {
	return store.RegistryListPrefix(c.group, c.resource, ns)
}

func meta[T any](obj *T) *metav1.ObjectMeta { return any(obj).(Object).Meta() }

// Decode turns a stored value of this kind into its object, with
// resourceVersion set to the value's ModRevision as every read here does.
// It is a store.Decoder, so a store.Cache of the kind holds exactly what Get
// would return.
func (c *Typed[T]) Decode(kv store.KV) (*T, error) { return c.decode(kv) }

func (c *Typed[T]) decode(kv store.KV) (*T, error) {
	obj := new(T)
	if err := json.Unmarshal(kv.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", c.kind, kv.Key, err)
	}
	m := meta(obj)
	m.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return obj, nil
}

func (c *Typed[T]) encode(obj *T) ([]byte, error) {
	m := meta(obj)
	rv := m.ResourceVersion
	m.ResourceVersion = "" // the store's revision is the truth
	defer func() { m.ResourceVersion = rv }()
	return json.Marshal(obj)
}

func (c *Typed[T]) setType(obj *T) {
	// TypeMeta is the first embedded field of every kind.
	b, _ := json.Marshal(struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}{c.apiVersion, c.kind})
	_ = json.Unmarshal(b, obj)
}

// Get returns ns/name. Errors: errdefs.ErrNotFound.
func (c *Typed[T]) Get(ctx context.Context, ns, name string) (*T, error) {
	kv, err := c.r.st.Get(ctx, c.Key(ns, name))
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s %q in namespace %q: %w", c.kind, name, ns, errdefs.ErrNotFound)
		}
		return nil, err
	}
	return c.decode(kv)
}

// List returns the objects in ns ("" = all namespaces) and the store
// revision the list was read at.
func (c *Typed[T]) List(ctx context.Context, ns string) ([]*T, int64, error) {
	return c.ListAt(ctx, ns, 0)
}

// ListAt is List as the store was at revision rev (0: now). Errors:
// errdefs.ErrExpired when rev is compacted away, errdefs.ErrInvalidArgument
// when it is in the future.
func (c *Typed[T]) ListAt(ctx context.Context, ns string, rev int64) ([]*T, int64, error) {
	kvs, rev, err := c.r.st.ListAt(ctx, c.Prefix(ns), rev)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*T, 0, len(kvs))
	for _, kv := range kvs {
		obj, err := c.decode(kv)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, obj)
	}
	return out, rev, nil
}

// Create stores a new object, setting uid, creationTimestamp, generation 1
// and resourceVersion. Errors: errdefs.ErrAlreadyExists.
func (c *Typed[T]) Create(ctx context.Context, obj *T, opts ...store.WriteOption) (*T, error) {
	m := meta(obj)
	if m.Name == "" || m.Namespace == "" {
		return nil, fmt.Errorf("create %s: metadata.name and metadata.namespace are required: %w", c.kind, errdefs.ErrInvalidArgument)
	}
	c.setType(obj)
	m.UID = metav1.NewUID()
	m.CreationTimestamp = metav1.NewTime(c.r.now())
	m.Generation = 1
	m.ResourceVersion = ""
	b, err := c.encode(obj)
	if err != nil {
		return nil, err
	}
	rev, err := c.r.st.Put(ctx, c.Key(m.Namespace, m.Name), b, append(opts, store.IfRevision(0))...)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("%s %q already exists in namespace %q: %w", c.kind, m.Name, m.Namespace, errdefs.ErrAlreadyExists)
		}
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}

// Update replaces an object. When metadata.resourceVersion is set the write
// is a compare-and-swap on it (errdefs.ErrConflict when stale); when empty,
// against the version read here. Server-owned metadata is kept from the
// stored object; generation is bumped iff spec changed.
func (c *Typed[T]) Update(ctx context.Context, obj *T, opts ...store.WriteOption) (*T, error) {
	m := meta(obj)
	key := c.Key(m.Namespace, m.Name)
	kv, err := c.r.st.Get(ctx, key)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s %q in namespace %q: %w", c.kind, m.Name, m.Namespace, errdefs.ErrNotFound)
		}
		return nil, err
	}
	expect := kv.ModRevision
	if m.ResourceVersion != "" {
		rv, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("metadata.resourceVersion %q: not a resource version: %w", m.ResourceVersion, errdefs.ErrInvalidArgument)
		}
		if rv != kv.ModRevision {
			return nil, conflict(c.kind, m.Name, errdefs.ErrConflict)
		}
		expect = rv
	}
	old, err := c.decode(kv)
	if err != nil {
		return nil, err
	}
	om := meta(old)
	c.setType(obj)
	m.UID, m.CreationTimestamp, m.Generation = om.UID, om.CreationTimestamp, om.Generation
	if specChanged(old, obj) {
		m.Generation++
	}
	b, err := c.encode(obj)
	if err != nil {
		return nil, err
	}
	rev, err := c.r.st.Put(ctx, key, b, append(opts, store.IfRevision(expect))...)
	if err != nil {
		if errdefs.IsConflict(err) {
			return nil, conflict(c.kind, m.Name, err)
		}
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}

func conflict(kind, name string, err error) error {
	return fmt.Errorf("Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again: %w", kind, name, err)
}

// Delete removes ns/name. Errors: errdefs.ErrNotFound.
func (c *Typed[T]) Delete(ctx context.Context, ns, name string, opts ...store.WriteOption) error {
	err := c.r.st.Delete(ctx, c.Key(ns, name), opts...)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%s %q in namespace %q: %w", c.kind, name, ns, errdefs.ErrNotFound)
	}
	return err
}

// Watch streams changes in ns ("" = all) from store revision fromRev (0 =
// now). The channel closes after an Err event or when ctx ends.
func (c *Typed[T]) Watch(ctx context.Context, ns string, fromRev int64) <-chan Event[T] {
	out := make(chan Event[T], 16)
	wc := c.r.st.Watch(ctx, c.Prefix(ns), fromRev)
	go func() {
		defer close(out)
		for wr := range wc {
			if wr.Err != nil {
				select {
				case out <- Event[T]{Err: wr.Err}:
				case <-ctx.Done():
				}
				return
			}
			for _, ev := range wr.Events {
				obj, err := c.decode(ev.KV)
				e := Event[T]{Object: obj, Revision: ev.KV.ModRevision, Err: err}
				switch {
				case ev.Type == store.EventDelete:
					e.Type = Deleted
				case ev.KV.CreateRevision == ev.KV.ModRevision:
					e.Type = Added
				default:
					e.Type = Modified
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func specChanged(a, b any) bool {
	return !bytes.Equal(specJSON(a), specJSON(b))
}

func specJSON(obj any) []byte {
	b, _ := json.Marshal(obj)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m["spec"]
}
