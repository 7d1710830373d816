package apiserver

import (
	"context"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
)

// resource is what the handlers need from one kind, erasing the registry's
// type parameter so one set of handlers serves all four kinds.
type resource interface {
	kind() string
	// userWritable is false for Revisions: the controller stamps them.
	userWritable() bool
	newObject() v1.Object
	get(ctx context.Context, ns, name string) (v1.Object, error)
	// list reads ns ("" = all) at store revision rev (0 = now). Errors:
	// errdefs.ErrExpired (compacted), errdefs.ErrInvalidArgument (future).
	list(ctx context.Context, ns string, rev int64) ([]v1.Object, int64, error)
	create(ctx context.Context, obj v1.Object) (v1.Object, error)
	update(ctx context.Context, obj v1.Object) (v1.Object, error)
	delete(ctx context.Context, ns, name string, opts ...store.WriteOption) error
	watch(ctx context.Context, ns string, fromRev int64) <-chan event
	// keepStatus copies src's status over dst's.
	keepStatus(dst, src v1.Object)
}

type event struct {
	Type     registry.EventType
	Object   v1.Object
	Revision int64 // the store revision of the change
	Err      error
}

type typed[T any, PT interface {
	*T
	v1.Object
}] struct {
	c          *registry.Typed[T]
	writable   bool
	copyStatus func(dst, src *T)
}

func (t *typed[T, PT]) kind() string         { return t.c.Kind() }
func (t *typed[T, PT]) userWritable() bool   { return t.writable }
func (t *typed[T, PT]) newObject() v1.Object { return PT(new(T)) }

func (t *typed[T, PT]) get(ctx context.Context, ns, name string) (v1.Object, error) {
	o, err := t.c.Get(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return PT(o), nil
}

func (t *typed[T, PT]) list(ctx context.Context, ns string, rev int64) ([]v1.Object, int64, error) {
	items, rev, err := t.c.ListAt(ctx, ns, rev)
	if err != nil {
		return nil, 0, err
	}
	out := make([]v1.Object, len(items))
	for i, o := range items {
		out[i] = PT(o)
	}
	return out, rev, nil
}

func (t *typed[T, PT]) create(ctx context.Context, obj v1.Object) (v1.Object, error) {
	o, err := t.c.Create(ctx, (*T)(obj.(PT)))
	if err != nil {
		return nil, err
	}
	return PT(o), nil
}

func (t *typed[T, PT]) update(ctx context.Context, obj v1.Object) (v1.Object, error) {
	o, err := t.c.Update(ctx, (*T)(obj.(PT)))
	if err != nil {
		return nil, err
	}
	return PT(o), nil
}

func (t *typed[T, PT]) delete(ctx context.Context, ns, name string, opts ...store.WriteOption) error {
	return t.c.Delete(ctx, ns, name, opts...)
}

func (t *typed[T, PT]) watch(ctx context.Context, ns string, fromRev int64) <-chan event {
	in := t.c.Watch(ctx, ns, fromRev)
	out := make(chan event)
	go func() {
		defer close(out)
		for ev := range in {
			e := event{Type: ev.Type, Revision: ev.Revision, Err: ev.Err}
			if ev.Object != nil {
				e.Object = PT(ev.Object)
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (t *typed[T, PT]) keepStatus(dst, src v1.Object) {
	t.copyStatus((*T)(dst.(PT)), (*T)(src.(PT)))
}

// resKey is the key of resources' map: group/resource, so both served
// versions of DomainMappings resolve to the one stored kind.
func resKey(group, resource string) string { return group + "/" + resource }

func resources(reg *registry.Registry) map[string]resource {
	return map[string]resource{
		resKey(v1beta1.Group, v1beta1.ResourceDomainMapping): domainMappings{&typed[v1beta1.DomainMapping, *v1beta1.DomainMapping]{
			c: reg.DomainMappings(), writable: true,
			copyStatus: func(d, s *v1beta1.DomainMapping) { d.Status = s.Status },
		}},
		resKey(v1.Group, v1.ResourceServices): &typed[v1.Service, *v1.Service]{c: reg.Services(), writable: true,
			copyStatus: func(d, s *v1.Service) { d.Status = s.Status }},
		resKey(v1.Group, v1.ResourceConfigurations): &typed[v1.Configuration, *v1.Configuration]{c: reg.Configurations(), writable: true,
			copyStatus: func(d, s *v1.Configuration) { d.Status = s.Status }},
		resKey(v1.Group, v1.ResourceRevisions): &typed[v1.Revision, *v1.Revision]{c: reg.Revisions(), writable: false,
			copyStatus: func(d, s *v1.Revision) { d.Status = s.Status }},
		resKey(v1.Group, v1.ResourceRoutes): &typed[v1.Route, *v1.Route]{c: reg.Routes(), writable: true,
			copyStatus: func(d, s *v1.Route) { d.Status = s.Status }},
	}
}
