package controller

import (
	"context"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Ownership is decided by UID, never by name or label, as Kubernetes does:
// a Service deleted and created again under the same name is a different
// owner, and what the first one owned is garbage, not the second one's.

// controllerOf is m's controlling owner reference (Kubernetes'
// metav1.GetControllerOf), or nil.
func controllerOf(m *metav1.ObjectMeta) *metav1.OwnerReference {
	for i, o := range m.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return &m.OwnerReferences[i]
		}
	}
	return nil
}

// controlledBy reports whether the object with uid controls m (Knative's
// metav1.IsControlledBy).
func controlledBy(m *metav1.ObjectMeta, uid string) bool {
	c := controllerOf(m)
	return c != nil && uid != "" && c.UID == uid
}

// controllerNamed returns the name of m's controlling owner of kind in the
// serving group, or "".
func controllerNamed(m *metav1.ObjectMeta, kind string) string {
	if c := controllerOf(m); c != nil && c.Kind == kind && servingGroup(c.APIVersion) {
		return c.Name
	}
	return ""
}

func servingGroup(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return group == v1.Group
}

// ownerUID is the UID of the serving object kind/ns/name. known is false
// for kinds the controller does not follow. Errors: errdefs.ErrNotFound.
func (r *reconciler) ownerUID(ns, kind, name string) (uid string, known bool, err error) {
	var m *metav1.ObjectMeta
	switch kind {
	case v1.KindService:
		var s *v1.Service
		if s, err = r.services.Get(ns, name); err == nil {
			m = &s.Metadata
		}
	case v1.KindConfiguration:
		var c *v1.Configuration
		if c, err = r.configurations.Get(ns, name); err == nil {
			m = &c.Metadata
		}
	case v1.KindRoute:
		var rt *v1.Route
		if rt, err = r.routes.Get(ns, name); err == nil {
			m = &rt.Metadata
		}
	default:
		return "", false, nil
	}
	if err != nil {
		return "", true, err
	}
	return m.UID, true, nil
}

// orphaned reports whether the object with metadata m in ns is garbage in
// Kubernetes' sense: it has owner references, and no owner they name
// exists with the referenced UID. An owner of a kind the controller does
// not follow keeps the object (nothing here can tell it is gone).
func (r *reconciler) orphaned(ns string, m *metav1.ObjectMeta) (bool, error) {
	if len(m.OwnerReferences) == 0 {
		return false, nil
	}
	for _, o := range m.OwnerReferences {
		if !servingGroup(o.APIVersion) {
			return false, nil
		}
		uid, known, err := r.ownerUID(ns, o.Kind, o.Name)
		switch {
		case !known:
			return false, nil
		case errdefs.IsNotFound(err):
			continue
		case err != nil:
			return false, err
		case uid == o.UID:
			return false, nil
		}
	}
	return true, nil
}

// collectOrphanRevisions deletes the revisions controlled by a
// Configuration named cfgName that no longer exists with their owner's
// UID: those of a deleted Configuration, or of an earlier one of that name.
func (r *reconciler) collectOrphanRevisions(ctx context.Context, ns, cfgName string) error {
	for _, rev := range r.revisions.List(ns) {
		if controllerNamed(&rev.Metadata, v1.KindConfiguration) != cfgName {
			continue
		}
		gone, err := r.orphaned(ns, &rev.Metadata)
		if err != nil {
			return err
		}
		if !gone {
			continue
		}
		r.log.Info("deleting revision whose configuration is gone", "namespace", ns, "revision", rev.Metadata.Name, "owner_uid", controllerOf(&rev.Metadata).UID)
		if err := ignoreNotFound(r.revisions.Delete(ctx, ns, rev.Metadata.Name)); err != nil {
			return err
		}
	}
	return nil
}
