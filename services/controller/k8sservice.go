package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// k8sService is a stored core/v1 Service (services/<ns>/<name>) with the
// revision it was read at, for compare-and-swap writes.
type k8sService struct {
	svc *corev1.Service
	rev int64
}

func decodeK8sService(kv store.KV) (k8sService, error) {
	svc := &corev1.Service{}
	if err := json.Unmarshal(kv.Value, svc); err != nil {
		return k8sService{}, fmt.Errorf("decode service %s: %w", kv.Key, err)
	}
	svc.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return k8sService{svc: svc, rev: kv.ModRevision}, nil
}

// k8sServices is what the route reconciler needs of services/.
type k8sServices interface {
	// Get returns ns/name from the cache (a copy, free to change) and the
	// revision it was stored at.
	Get(ns, name string) (svc *corev1.Service, rev int64, ok bool)
	// Create stores svc under its namespace and name. Errors:
	// errdefs.ErrAlreadyExists, ErrNotLeader.
	Create(ctx context.Context, svc *corev1.Service) error
	// Update replaces the record of svc if it is still at rev. Errors:
	// errdefs.ErrConflict, ErrNotFound, ErrNotLeader.
	Update(ctx context.Context, svc *corev1.Service, rev int64) error
	// Delete drops ns/name if it is still at rev. Errors:
	// errdefs.ErrConflict, ErrNotFound, ErrNotLeader.
	Delete(ctx context.Context, ns, name string, rev int64) error
}

// k8sServiceStore is k8sServices over the fenced store and the leader's
// cache of services/, which records every successful write at once.
type k8sServiceStore struct {
	st    store.Store // fenced
	cache *store.Cache[k8sService]
}

var _ k8sServices = (*k8sServiceStore)(nil)

func (s *k8sServiceStore) Get(ns, name string) (*corev1.Service, int64, bool) {
	v, ok := s.cache.Get(store.ServiceKey(ns, name))
	if !ok {
		return nil, 0, false
	}
	return v.svc.DeepCopy(), v.rev, true
}

func (s *k8sServiceStore) put(ctx context.Context, svc *corev1.Service, expect int64) error {
	stored := svc.DeepCopy()
	stored.ResourceVersion = "" // the key's mod revision
	b, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("encode service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	key := store.ServiceKey(svc.Namespace, svc.Name)
	rev, err := s.st.Put(ctx, key, b, store.IfRevision(expect))
	if err != nil {
		return fmt.Errorf("write service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	stored.ResourceVersion = strconv.FormatInt(rev, 10)
	s.cache.Observe(key, k8sService{svc: stored, rev: rev}, rev)
	return nil
}

func (s *k8sServiceStore) Create(ctx context.Context, svc *corev1.Service) error {
	return s.put(ctx, svc, 0)
}

func (s *k8sServiceStore) Update(ctx context.Context, svc *corev1.Service, rev int64) error {
	return s.put(ctx, svc, rev)
}

func (s *k8sServiceStore) Delete(ctx context.Context, ns, name string, rev int64) error {
	key := store.ServiceKey(ns, name)
	err := s.st.Delete(ctx, key, store.IfRevision(rev))
	if err == nil || errdefs.IsNotFound(err) {
		s.cache.Forget(key)
	}
	if err != nil {
		return fmt.Errorf("delete service %s/%s: %w", ns, name, err)
	}
	return nil
}

// routeControllerOf is the Route that controls svc: its name and UID, or
// ok=false when no Route does.
func routeControllerOf(svc *corev1.Service) (name string, uid types.UID, ok bool) {
	c := k8smeta.GetControllerOf(svc)
	if c == nil || c.Kind != v1.KindRoute || !servingGroup(c.APIVersion) {
		return "", "", false
	}
	return c.Name, c.UID, true
}

// reconcileK8sService keeps route's core/v1 Service as Knative's route
// reconciler keeps its placeholder Service: created once; later its spec
// and owner are set and the Route's labels and annotations are added to
// the ones it has, so a key removed from the Route stays on the Service.
// It writes only when something changed. owned is false when a Service
// of the name exists that no Route controls: it is left as it is.
func (r *reconciler) reconcileK8sService(ctx context.Context, route *v1.Route, now time.Time) (owned bool, err error) {
	ns, name := route.Metadata.Namespace, route.Metadata.Name
	desired := resources.MakeK8sService(route)
	cur, rev, ok := r.k8sServices.Get(ns, name)
	if ok {
		_, uid, byRoute := routeControllerOf(cur)
		if !byRoute {
			return false, nil
		}
		if uid != types.UID(route.Metadata.UID) {
			// The Route it names was deleted and one was created again
			// under its name: the first one's Service is garbage.
			r.log.Info("deleting service whose route is gone", "namespace", ns, "service", name, "owner_uid", string(uid))
			if err := r.k8sServices.Delete(ctx, ns, name, rev); err != nil && !errdefs.IsNotFound(err) {
				return true, err
			}
			ok = false
		}
	}
	if !ok {
		desired.UID = types.UID(metav1.NewUID())
		desired.CreationTimestamp = k8smeta.NewTime(now)
		return true, r.k8sServices.Create(ctx, desired)
	}
	next := cur.DeepCopy()
	next.Spec = desired.Spec
	next.OwnerReferences = desired.OwnerReferences
	next.Labels = union(cur.Labels, desired.Labels)
	next.Annotations = union(cur.Annotations, desired.Annotations)
	if equality.Semantic.DeepEqual(cur, next) {
		return true, nil
	}
	return true, r.k8sServices.Update(ctx, next, rev)
}

// deleteK8sService drops the Service of a Route that is gone, when a Route
// controls it.
func (r *reconciler) deleteK8sService(ctx context.Context, ns, name string) error {
	cur, rev, ok := r.k8sServices.Get(ns, name)
	if !ok {
		return nil
	}
	if _, _, byRoute := routeControllerOf(cur); !byRoute {
		return nil
	}
	r.log.Info("deleting service of a deleted route", "namespace", ns, "service", name)
	return ignoreNotFound(r.k8sServices.Delete(ctx, ns, name, rev))
}

// union is Knative's kmap.Union: every key of a and b, b's value winning;
// nil when both are empty.
func union(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
