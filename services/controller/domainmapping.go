package controller

import (
	"context"
	"fmt"
	"net/url"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
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
func (r *reconciler) reconcileDomainMapping(ctx context.Context, ns, name string) ([]workKey, error) {
	dm, err := r.domainMappings.Get(ns, name)
	if errdefs.IsNotFound(err) {
		return r.releaseDomainClaim(ctx, ns, name)
	}
	if err != nil {
		return nil, err
	}
	now := r.opts.Now()
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

	claimed, err := r.claimDomain(ctx, dm)
	if err != nil {
		st.MarkDomainClaimFailed(err.Error(), now)
	} else if claimed {
		st.MarkDomainClaimed(now)
	} else {
		st.MarkDomainClaimNotOwned(now)
	}

	route, reason, msg := r.resolveDomainMappingRef(dm)
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
	if _, uerr := r.domainMappings.Update(ctx, dm); uerr != nil {
		return nil, uerr
	}
	return nil, err
}

// claimDomain makes sure dm's namespace holds the claim on its name. It
// reports false when another namespace holds it.
func (r *reconciler) claimDomain(ctx context.Context, dm *v1beta1.DomainMapping) (bool, error) {
	domain := dm.Metadata.Name
	cl, ok := r.claims.Get(domain)
	for range 2 {
		if ok {
			return cl.Namespace == dm.Metadata.Namespace, nil
		}
		err := r.claims.Create(ctx, domain, dm.Metadata.Namespace)
		if err == nil {
			r.log.Info("claimed domain", "domain", domain, "namespace", dm.Metadata.Namespace)
			return true, nil
		}
		if !errdefs.IsAlreadyExists(err) && !errdefs.IsConflict(err) {
			return false, err
		}
		// Someone claimed it before the cache heard of it: read the winner.
		cl, err = r.claims.Read(ctx, domain)
		switch {
		case err == nil:
			ok = true
		case !errdefs.IsNotFound(err):
			return false, err
		}
	}
	return false, fmt.Errorf("claim on %q keeps changing", domain)
}

// releaseDomainClaim drops a deleted mapping's claim when its namespace held
// it, and requeues mappings of the same domain elsewhere so the next one in
// line can take it.
func (r *reconciler) releaseDomainClaim(ctx context.Context, ns, name string) ([]workKey, error) {
	cl, ok := r.claims.Get(name)
	if !ok || cl.Namespace != ns {
		return nil, nil
	}
	if err := r.claims.Delete(ctx, name, cl.rev); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	r.log.Info("released domain", "domain", name, "namespace", ns)
	var more []workKey
	for _, o := range r.domainMappings.List("") {
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
func (r *reconciler) resolveDomainMappingRef(dm *v1beta1.DomainMapping) (route *v1.Route, reason, msg string) {
	ref := dm.Spec.Ref
	ns := dm.Metadata.Namespace
	switch ref.Kind {
	case v1.KindService:
		svc, err := r.services.Get(ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("services.serving.knative.dev %q not found", ref.Name)
		}
		if svc.Status.Address == nil || svc.Status.Address.URL == "" {
			return nil, "", fmt.Sprintf("address not set for Service %s/%s", ns, ref.Name)
		}
		rt, err := r.routes.Get(ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("address not set for Service %s/%s", ns, ref.Name)
		}
		route = rt
	case v1.KindRoute:
		rt, err := r.routes.Get(ns, ref.Name)
		if err != nil {
			return nil, "", fmt.Sprintf("routes.serving.knative.dev %q not found", ref.Name)
		}
		if rt.Status.Address == nil || rt.Status.Address.URL == "" {
			return nil, "", fmt.Sprintf("address not set for Route %s/%s", ns, ref.Name)
		}
		route = rt
	default:
		return nil, "", fmt.Sprintf("unsupported ref kind %q", ref.Kind)
	}
	if !route.IsReady() || len(route.Status.Traffic) == 0 {
		return route, "RouteNotReady", fmt.Sprintf("Route %s/%s is not ready to serve traffic.", ns, route.Metadata.Name)
	}
	return route, "", ""
}
