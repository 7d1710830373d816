package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/store"
)

// kDomainMapping is the work-queue kind of DomainMappings.
const kDomainMapping = "domainmapping"

// DomainClaim is the stored value of domainclaims/<domain>: which namespace
// holds a mapped domain (Knative's ClusterDomainClaim spec.namespace).
type DomainClaim struct {
	Namespace string `json:"namespace"`
}

// reconcileDomainMapping claims the mapping's domain cluster-wide (first
// come, first served), resolves its ref and reports whether the edge serves
// it. kiln always creates claims itself, as Knative does with
// autocreate-cluster-domain-claims: there is no ClusterDomainClaim API.
func (c *Controller) reconcileDomainMapping(ctx context.Context, w *writer, ns, name string) ([]workKey, error) {
	dm, err := c.reg.DomainMappings().Get(ctx, ns, name)
	if errdefs.IsNotFound(err) {
		return c.releaseDomainClaim(ctx, w, ns, name)
	}
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	before := statusJSON(dm.Status)
	st := &dm.Status
	st.InitializeConditions(now)
	if st.ObservedGeneration != dm.Metadata.Generation {
		st.MarkIngressNotConfigured(now)
	}
	st.ObservedGeneration = dm.Metadata.Generation

	// The mapped URL is the object's name; https when a TLS secret is given
	// (kiln has no auto-TLS, so without one the domain is plain HTTP).
	u := url.URL{Scheme: "http", Host: dm.Metadata.Name}
	if dm.Spec.TLS != nil {
		u.Scheme = "https"
		st.MarkCertificateNotRequired(now)
	} else {
		st.MarkTLSNotEnabled(now)
	}
	st.URL = u.String()
	st.Address = &metav1.Addressable{URL: st.URL}

	claimed, err := c.claimDomain(ctx, w, dm)
	if err != nil {
		st.MarkDomainClaimFailed(err.Error(), now)
	} else if claimed {
		st.MarkDomainClaimed(now)
	} else {
		st.MarkDomainClaimNotOwned(now)
	}

	route, reason, msg := c.resolveDomainMappingRef(ctx, dm)
	switch {
	case route == nil:
		st.MarkReferenceNotResolved(msg, now)
		st.MarkIngressNotReady("IngressNotConfigured", "Ingress has not yet been reconciled.", now)
	case reason != "":
		st.MarkReferenceResolved(now)
		st.MarkIngressNotReady(reason, msg, now)
	case !claimed:
		st.MarkReferenceResolved(now)
		st.MarkIngressNotReady("IngressNotConfigured", "Ingress has not yet been reconciled.", now)
	default:
		st.MarkReferenceResolved(now)
		st.MarkIngressReady(now)
	}
	sortConditions(st.Conditions)
	if statusJSON(dm.Status) == before {
		return nil, err
	}
	if _, uerr := c.reg.DomainMappings().Update(ctx, dm, w.opt()); uerr != nil {
		return nil, uerr
	}
	return nil, err
}

// claimDomain makes sure dm's namespace holds the claim on its name. It
// reports false when another namespace holds it.
func (c *Controller) claimDomain(ctx context.Context, w *writer, dm *v1beta1.DomainMapping) (bool, error) {
	key := store.DomainClaimKey(dm.Metadata.Name)
	for range 2 {
		kv, err := c.st.Get(ctx, key)
		if err == nil {
			var claim DomainClaim
			if err := json.Unmarshal(kv.Value, &claim); err != nil {
				return false, fmt.Errorf("decode claim on %q: %w", dm.Metadata.Name, err)
			}
			return claim.Namespace == dm.Metadata.Namespace, nil
		}
		if !errdefs.IsNotFound(err) {
			return false, err
		}
		b, _ := json.Marshal(DomainClaim{Namespace: dm.Metadata.Namespace})
		_, err = c.st.Put(ctx, key, b, store.IfRevision(0), w.opt())
		if err == nil {
			c.log.Info("claimed domain", "domain", dm.Metadata.Name, "namespace", dm.Metadata.Namespace)
			return true, nil
		}
		if !errdefs.IsAlreadyExists(err) && !errdefs.IsConflict(err) {
			return false, err
		}
		// Someone claimed it between our read and write: read the winner.
	}
	return false, fmt.Errorf("claim on %q keeps changing", dm.Metadata.Name)
}

// releaseDomainClaim drops a deleted mapping's claim when its namespace held
// it, and requeues mappings of the same domain elsewhere so the next one in
// line can take it.
func (c *Controller) releaseDomainClaim(ctx context.Context, w *writer, ns, name string) ([]workKey, error) {
	key := store.DomainClaimKey(name)
	kv, err := c.st.Get(ctx, key)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var claim DomainClaim
	if json.Unmarshal(kv.Value, &claim) == nil && claim.Namespace != ns {
		return nil, nil
	}
	if err := c.st.Delete(ctx, key, store.IfRevision(kv.ModRevision), w.opt()); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	c.log.Info("released domain", "domain", name, "namespace", ns)
	all, _, err := c.reg.DomainMappings().List(ctx, "")
	if err != nil {
		return nil, err
	}
	var more []workKey
	for _, o := range all {
		if o.Metadata.Name == name && o.Metadata.Namespace != ns {
			more = append(more, workKey{kDomainMapping, o.Metadata.Namespace, name})
		}
	}
	return more, nil
}

// resolveDomainMappingRef finds the Route that carries dm's traffic (a
// Service's route has the Service's name). route is nil when the ref does
// not resolve (msg says why); a non-empty reason means it resolved but the
// target does not serve yet.
func (c *Controller) resolveDomainMappingRef(ctx context.Context, dm *v1beta1.DomainMapping) (route *v1.Route, reason, msg string) {
	ref := dm.Spec.Ref
	ns := dm.Metadata.Namespace
	switch ref.Kind {
	case v1.KindService:
		svc, err := c.reg.Services().Get(ctx, ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("services.serving.knative.dev %q not found", ref.Name)
		}
		if svc.Status.Address == nil || svc.Status.Address.URL == "" {
			return nil, "", fmt.Sprintf("address not set for Service %s/%s", ns, ref.Name)
		}
		r, err := c.reg.Routes().Get(ctx, ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("address not set for Service %s/%s", ns, ref.Name)
		}
		route = r
	case v1.KindRoute:
		r, err := c.reg.Routes().Get(ctx, ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("routes.serving.knative.dev %q not found", ref.Name)
		}
		if r.Status.Address == nil || r.Status.Address.URL == "" {
			return nil, "", fmt.Sprintf("address not set for Route %s/%s", ns, ref.Name)
		}
		route = r
	default:
		return nil, "", fmt.Sprintf("unsupported ref kind %q", ref.Kind)
	}
	if !route.IsReady() || len(route.Status.Traffic) == 0 {
		return route, "RouteNotReady", fmt.Sprintf("Route %s/%s is not ready to serve traffic.", ns, route.Metadata.Name)
	}
	return route, "", ""
}

// domainMappingKeys lists the mappings in ns whose ref names name (a
// Service or the Route it owns share the name).
func (c *Controller) domainMappingKeys(ctx context.Context, ns, name string) []workKey {
	dms, _, err := c.reg.DomainMappings().List(ctx, ns)
	if err != nil {
		return nil
	}
	var keys []workKey
	for _, dm := range dms {
		if dm.Spec.Ref.Name == name {
			keys = append(keys, workKey{kDomainMapping, ns, dm.Metadata.Name})
		}
	}
	return keys
}
