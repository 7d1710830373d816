package controller

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

func cond(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg}
}

// reconcileService makes the Service's Configuration and Route match it and
// rolls their status up into the Service's.
func (r *reconciler) reconcileService(ctx context.Context, ns, name string) ([]workKey, error) {
	svc, err := r.services.Get(ns, name)
	if errdefs.IsNotFound(err) {
		return nil, nil // children are collected by their own reconcilers
	}
	if err != nil {
		return nil, err
	}
	now := r.opts.Now()

	desiredCfg := resources.MakeConfiguration(svc)
	cfg, err := r.configurations.Get(ns, name)
	if err == nil {
		// The route reconciler owns the routes annotation; keep it.
		if v := cfg.Metadata.Annotations[v1.RoutesAnnotation]; v != "" {
			setRoutesAnnotation(&desiredCfg.Metadata, v)
		}
	}
	switch {
	case errdefs.IsNotFound(err):
		if cfg, err = r.configurations.Create(ctx, desiredCfg); err != nil {
			return nil, fmt.Errorf("create configuration %q: %w", name, err)
		}
	case err != nil:
		return nil, err
	case !controlledBy(&cfg.Metadata, svc.Metadata.UID):
		return nil, r.serviceNotOwned(ctx, svc, "Configuration", now)
	case !reflect.DeepEqual(cfg.Spec, desiredCfg.Spec) || !reflect.DeepEqual(cfg.Metadata.Labels, desiredCfg.Metadata.Labels) || !reflect.DeepEqual(cfg.Metadata.Annotations, desiredCfg.Metadata.Annotations):
		cfg.Spec, cfg.Metadata.Labels, cfg.Metadata.Annotations = desiredCfg.Spec, desiredCfg.Metadata.Labels, desiredCfg.Metadata.Annotations
		if cfg, err = r.configurations.Update(ctx, cfg); err != nil {
			return nil, fmt.Errorf("update configuration %q: %w", name, err)
		}
	}

	desiredRoute := resources.MakeRoute(svc)
	route, err := r.routes.Get(ns, name)
	switch {
	case errdefs.IsNotFound(err):
		if route, err = r.routes.Create(ctx, desiredRoute); err != nil {
			return nil, fmt.Errorf("create route %q: %w", name, err)
		}
	case err != nil:
		return nil, err
	case !controlledBy(&route.Metadata, svc.Metadata.UID):
		return nil, r.serviceNotOwned(ctx, svc, "Route", now)
	case !reflect.DeepEqual(route.Spec, desiredRoute.Spec) || !reflect.DeepEqual(route.Metadata.Labels, desiredRoute.Metadata.Labels) || !reflect.DeepEqual(route.Metadata.Annotations, desiredRoute.Metadata.Annotations):
		route.Spec, route.Metadata.Labels, route.Metadata.Annotations = desiredRoute.Spec, desiredRoute.Metadata.Labels, desiredRoute.Metadata.Annotations
		if route, err = r.routes.Update(ctx, route); err != nil {
			return nil, fmt.Errorf("update route %q: %w", name, err)
		}
	}

	before := statusJSON(svc.Status)
	st := &svc.Status
	st.ObservedGeneration = svc.Metadata.Generation
	st.ConfigurationStatusFields = cfg.Status.ConfigurationStatusFields
	st.RouteStatusFields = route.Status.RouteStatusFields

	cfgCond := rollup(&cfg.Status.Status, cfg.Metadata.Generation, v1.ConfigurationConditionReady,
		fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", name))
	cfgCond.Type = v1.ServiceConditionConfigurationsReady
	routeCond := rollup(&route.Status.Status, route.Metadata.Generation, v1.RouteConditionReady,
		"The Route is still working to reflect the latest desired specification.")
	routeCond.Type = v1.ServiceConditionRoutesReady
	// The Route must point at what the Configuration says is latest before
	// the Service is Ready with latestRevision traffic.
	if routeCond.Status == metav1.ConditionTrue && cfg.Status.LatestReadyRevisionName != "" {
		for _, t := range route.Status.Traffic {
			if t.LatestRevision != nil && *t.LatestRevision && t.RevisionName != cfg.Status.LatestReadyRevisionName {
				routeCond = cond(v1.ServiceConditionRoutesReady, metav1.ConditionUnknown, "TrafficNotMigrated",
					"The Route is still working to reflect the latest desired specification.")
			}
		}
	}
	st.SetCondition(cfgCond, now)
	st.SetCondition(routeCond, now)
	// Knative marks the Configuration's condition, then the Route's: of
	// two that failed, the Route's reason is the Service's.
	ready := cond(v1.ServiceConditionReady, metav1.ConditionTrue, "", "")
	for _, cc := range []metav1.Condition{cfgCond, routeCond} {
		if cc.Status == metav1.ConditionFalse {
			ready = cond(v1.ServiceConditionReady, metav1.ConditionFalse, cc.Reason, cc.Message)
			continue
		}
		if cc.Status == metav1.ConditionUnknown && ready.Status == metav1.ConditionTrue {
			ready = cond(v1.ServiceConditionReady, metav1.ConditionUnknown, cc.Reason, cc.Message)
		}
	}
	st.SetCondition(ready, now)
	sortConditions(st.Conditions)
	if statusJSON(svc.Status) == before {
		return nil, nil
	}
	_, err = r.services.Update(ctx, svc)
	return nil, err
}

func (r *reconciler) serviceNotOwned(ctx context.Context, svc *v1.Service, kind string, now time.Time) error {
	before := statusJSON(svc.Status)
	msg := fmt.Sprintf("There is an existing %s %q that we do not own.", kind, svc.Metadata.Name)
	reason := "NotOwned"
	svc.Status.ObservedGeneration = svc.Metadata.Generation
	t := v1.ServiceConditionConfigurationsReady
	if kind == "Route" {
		t = v1.ServiceConditionRoutesReady
	}
	svc.Status.SetCondition(cond(t, metav1.ConditionFalse, reason, msg), now)
	svc.Status.SetCondition(cond(v1.ServiceConditionReady, metav1.ConditionFalse, reason, msg), now)
	if statusJSON(svc.Status) == before {
		return nil
	}
	_, err := r.services.Update(ctx, svc)
	return err
}

// rollup returns a child's Ready condition, or Unknown with msg while the
// child has not observed its latest generation.
func rollup(s *metav1.Status, generation int64, readyType, msg string) metav1.Condition {
	if s.ObservedGeneration != generation {
		return cond("", metav1.ConditionUnknown, "OutOfDate", msg)
	}
	rc := s.GetCondition(readyType)
	if rc == nil {
		return cond("", metav1.ConditionUnknown, "OutOfDate", msg)
	}
	out := *rc
	out.LastTransitionTime = nil
	if out.Status == metav1.ConditionUnknown && out.Message == "" {
		out.Message = msg
	}
	return out
}

func sortConditions(cs []metav1.Condition) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Type < cs[j].Type })
}

// reconcileConfiguration stamps the Revision of the current generation and
// tracks the latest created and ready revisions.
func (r *reconciler) reconcileConfiguration(ctx context.Context, ns, name string) ([]workKey, error) {
	cfg, err := r.configurations.Get(ns, name)
	if errdefs.IsNotFound(err) {
		return nil, r.collectOrphanRevisions(ctx, ns, name)
	}
	if err != nil {
		return nil, err
	}
	if gone, err := r.orphaned(ns, &cfg.Metadata); err != nil {
		return nil, err
	} else if gone {
		r.log.Info("deleting configuration whose owner is gone", "namespace", ns, "configuration", name, "owner_uid", cfg.Metadata.OwnerReferences[0].UID)
		return nil, ignoreNotFound(r.configurations.Delete(ctx, ns, name))
	}
	// The revisions of an earlier Configuration of this name go before this
	// one stamps its own, which could otherwise take their names.
	if err := r.collectOrphanRevisions(ctx, ns, name); err != nil {
		return nil, err
	}
	now := r.opts.Now()
	revName := resources.RevisionName(cfg)
	rev, err := r.revisions.Get(ns, revName)
	switch {
	case errdefs.IsNotFound(err):
		rev, err = r.revisions.Create(ctx, resources.MakeRevision(cfg))
		if err != nil {
			return nil, fmt.Errorf("create revision %q: %w", revName, err)
		}
		r.log.Info("created revision", "namespace", ns, "revision", revName)
	case err != nil:
		return nil, err
	}
	before := statusJSON(cfg.Status)
	st := &cfg.Status
	st.ObservedGeneration = cfg.Metadata.Generation
	if !controlledBy(&rev.Metadata, cfg.Metadata.UID) {
		// Someone else's (another Configuration's, or nobody's): never
		// adopted, as Knative refuses it.
		msg := fmt.Sprintf("There is an existing Revision %q that we do not own.", revName)
		st.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionFalse, "NotOwned", msg), now)
	} else {
		st.LatestCreatedRevisionName = revName
		rc := rev.Status.GetCondition(v1.RevisionConditionReady)
		switch {
		case rc != nil && rc.Status == metav1.ConditionTrue:
			st.LatestReadyRevisionName = revName
			st.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionTrue, "", ""), now)
		case rc != nil && rc.Status == metav1.ConditionFalse:
			st.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionFalse, "RevisionFailed",
				fmt.Sprintf("Revision %q failed with message: %s.", revName, rc.Message)), now)
		default:
			st.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionUnknown, "",
				fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", name)), now)
		}
	}
	if err := r.collectRevisionGarbage(ctx, ns, cfg, st.LatestReadyRevisionName, st.LatestCreatedRevisionName); err != nil {
		return nil, err
	}
	if statusJSON(cfg.Status) == before {
		return nil, nil
	}
	_, err = r.configurations.Update(ctx, cfg)
	return nil, err
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// reconcileRevision derives a Revision's status from the instances agents
// report for it.
func (r *reconciler) reconcileRevision(ctx context.Context, ns, name string) ([]workKey, error) {
	rev, err := r.revisions.Get(ns, name)
	if errdefs.IsNotFound(err) {
		delete(r.waiting, ns+"/"+name)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if gone, err := r.orphaned(ns, &rev.Metadata); err != nil {
		return nil, err
	} else if gone {
		r.log.Info("deleting revision whose configuration is gone", "namespace", ns, "revision", name)
		return nil, ignoreNotFound(r.revisions.Delete(ctx, ns, name))
	}
	var ready int32
	var failed, waiting *cluster.Instance
	var readyInstances []cluster.Instance
	for _, in := range r.instances.ForRevision(ns, name) {
		switch {
		case in.Ready:
			ready++
			readyInstances = append(readyInstances, in)
		case in.Phase == cluster.PhaseFailed && in.Reason == configError:
			inCopy := in
			waiting = &inCopy
		case in.Phase == cluster.PhaseFailed && in.Reason != probeTimeout:
			inCopy := in
			failed = &inCopy
		}
	}
	// An instance waiting for its configuration may be gone (replaced,
	// or scaled away) by the time progress-deadline passes: the last one
	// seen still says why the revision never came up.
	switch key := ns + "/" + name; {
	case ready > 0:
		delete(r.waiting, key)
	case waiting != nil:
		if r.waiting == nil {
			r.waiting = map[string]cluster.Instance{}
		}
		r.waiting[key] = *waiting
	default:
		if w, ok := r.waiting[key]; ok {
			waiting = &w
		}
	}
	now := r.opts.Now()
	before := statusJSON(rev.Status)
	st := &rev.Status
	st.ObservedGeneration = rev.Metadata.Generation
	st.ActualReplicas = &ready
	st.ContainerStatuses = containerStatuses(rev.Spec.Containers, st.ContainerStatuses, readyInstances, servingContainer(rev.Spec.Containers))
	st.InitContainerStatuses = containerStatuses(rev.Spec.InitContainers, st.InitContainerStatuses, readyInstances, -1)
	wasReady := st.IsTrue(v1.RevisionConditionReady)
	switch {
	case ready > 0:
		st.SetCondition(cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionTrue, "", ""), now)
		st.SetCondition(cond(v1.RevisionConditionContainerHealthy, metav1.ConditionTrue, "", ""), now)
		active := cond(v1.RevisionConditionActive, metav1.ConditionTrue, "", "")
		active.Severity = "Info"
		st.SetCondition(active, now)
		st.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionTrue, "", ""), now)
	case failed != nil && !wasReady:
		reason, msg := containerFailure(failed)
		st.SetCondition(cond(v1.RevisionConditionContainerHealthy, metav1.ConditionFalse, reason, msg), now)
		st.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionFalse, reason, msg), now)
	case wasReady:
		// Scaled to zero (or between instances): still Ready, not Active.
		// Active is informational in Knative: a revision at zero is healthy.
		active := cond(v1.RevisionConditionActive, metav1.ConditionFalse, "NoTraffic", "The target is not receiving traffic.")
		active.Severity = "Info"
		st.SetCondition(active, now)
	case isFalse(&st.Status, v1.RevisionConditionContainerHealthy):
		// Restarting after a failure (the agent retries with backoff, as a
		// kubelet does): the failure stands until an instance is ready, as
		// Knative keeps ContainerHealthy=False through a CrashLoopBackOff.
		ra := cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionUnknown, "Deploying", "")
		if over, d := r.progressDeadlineExceeded(rev, now); over {
			ra = cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionFalse, "ProgressDeadlineExceeded",
				fmt.Sprintf("Unable to create pods for more than %d seconds.", int(d.Seconds())))
		}
		st.SetCondition(ra, now)
		hc := st.GetCondition(v1.RevisionConditionContainerHealthy)
		st.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionFalse, hc.Reason, hc.Message), now)
	default:
		if over, d := r.progressDeadlineExceeded(rev, now); over {
			// Knative gives up on a revision that never became ready within
			// config-deployment's progress-deadline, naming why its
			// container is still waiting when it knows.
			reason, msg := "ProgressDeadlineExceeded", fmt.Sprintf("Unable to create pods for more than %d seconds.", int(d.Seconds()))
			if waiting != nil {
				reason, msg = waiting.Reason, waiting.Message
			} else if ra := st.GetCondition(v1.RevisionConditionResourcesAvailable); ra != nil && ra.Status == metav1.ConditionFalse && ra.Reason == configError {
				// Scaled to zero since (no instance waits any more): the
				// last known cause stands.
				reason, msg = ra.Reason, ra.Message
			}
			st.SetCondition(cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionFalse, reason, msg), now)
			st.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionFalse, reason, msg), now)
			break
		}
		st.SetCondition(cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionUnknown, "Deploying", ""), now)
		st.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionUnknown, "Deploying", ""), now)
	}
	sortConditions(st.Conditions)
	if statusJSON(rev.Status) == before {
		return nil, nil
	}
	_, err = r.revisions.Update(ctx, rev)
	return nil, err
}

// containerFailure is the reason and message Knative's revision reconciler
// gives a failed container: ExitCode<N> and "Container failed with: " its
// termination message for one that exited, ContainerMissing for an image
// that cannot be pulled.
// probeTimeout is the reason of an instance whose container ran but never
// passed its readiness probe in the agent's start window. As on Knative,
// where a pod that is not ready is still deploying, that is no container
// failure: the revision stays Deploying (the agent retries) until an
// instance is ready or config-deployment's progress-deadline passes.
const probeTimeout = "ProbeTimeout"

// configError is the reason of an instance whose container could not be
// configured: a ConfigMap or Secret (or a key of one) it needs is missing.
// Like a pod waiting in CreateContainerConfigError, the revision keeps
// Deploying (the agent retries, so creating the object lets it start)
// until progress-deadline; then Knative marks it ResourcesAvailable=False
// with the waiting container's reason and message.
const configError = "CreateContainerConfigError"

func containerFailure(in *cluster.Instance) (reason, msg string) {
	switch {
	case in.ExitCode != nil:
		m := in.TerminationMessage
		if *in.ExitCode == 0 && m == "" {
			m = "container exited with no error"
		}
		return fmt.Sprint("ExitCode", *in.ExitCode), "Container failed with: " + m
	case in.Reason == "ImagePullFailed":
		return "ContainerMissing", in.Message
	case in.Reason == "":
		return "ExitCode", in.Message
	}
	return in.Reason, in.Message
}

// routeResolver answers traffic questions from the caches.
type routeResolver struct {
	r  *reconciler
	ns string
}

func (rr routeResolver) LatestReady(cfg string) (string, bool) {
	got, err := rr.r.configurations.Get(rr.ns, cfg)
	if err != nil {
		return "", false
	}
	return got.Status.LatestReadyRevisionName, isFalse(&got.Status.Status, v1.ConfigurationConditionReady)
}

func (rr routeResolver) RevisionReady(name string) (bool, bool, bool) {
	got, err := rr.r.revisions.Get(rr.ns, name)
	if err != nil {
		return false, false, false
	}
	return true, got.Status.IsTrue(v1.RevisionConditionReady), isFalse(&got.Status.Status, v1.RevisionConditionReady)
}

func isFalse(s *metav1.Status, t string) bool {
	c := s.GetCondition(t)
	return c != nil && c.Status == metav1.ConditionFalse
}

// reconcileRoute resolves a Route's traffic to revisions and its URLs, and
// keeps its core/v1 Service (gone with the Route).
func (r *reconciler) reconcileRoute(ctx context.Context, ns, name string) ([]workKey, error) {
	route, err := r.routes.Get(ns, name)
	if errdefs.IsNotFound(err) {
		if err := r.deleteK8sService(ctx, ns, name); err != nil {
			return nil, err
		}
		return nil, r.labelRouteTargets(ctx, ns, name, nil)
	}
	if err != nil {
		return nil, err
	}
	if gone, err := r.orphaned(ns, &route.Metadata); err != nil {
		return nil, err
	} else if gone {
		r.log.Info("deleting route whose owner is gone", "namespace", ns, "route", name, "owner_uid", route.Metadata.OwnerReferences[0].UID)
		return nil, ignoreNotFound(r.routes.Delete(ctx, ns, name))
	}
	now := r.opts.Now()
	before := statusJSON(route.Status)
	st := &route.Status
	st.ObservedGeneration = route.Metadata.Generation
	dc := resources.ForVisibility(r.domainConfig(route), route.Metadata.Labels)
	host, herr := dc.Host(name, ns, "")
	if herr == nil {
		st.URL = dc.Scheme + "://" + host
	}
	st.Address = &metav1.Addressable{URL: fmt.Sprintf("http://%s.%s.svc.cluster.local", name, ns)}
	traffic, terr := resources.ResolveTraffic(route, dc, routeResolver{r, ns})
	switch {
	case herr != nil:
		st.SetCondition(cond(v1.RouteConditionReady, metav1.ConditionFalse, "DomainTemplateError", herr.Error()), now)
	case terr != nil:
		// Keep serving the last resolved traffic while the new one is not
		// resolvable, as Knative does. A target that failed (or is gone)
		// fails the Route; one still coming up keeps it Unknown.
		status := metav1.ConditionUnknown
		if terr.Failed {
			status = metav1.ConditionFalse
		}
		st.SetCondition(cond(v1.RouteConditionAllTrafficAssigned, status, terr.Reason, terr.Message), now)
		st.SetCondition(cond(v1.RouteConditionIngressReady, metav1.ConditionUnknown, "", "Ingress has not yet been reconciled."), now)
		st.SetCondition(cond(v1.RouteConditionReady, status, terr.Reason, terr.Message), now)
	default:
		st.Traffic = traffic
		st.SetCondition(cond(v1.RouteConditionAllTrafficAssigned, metav1.ConditionTrue, "", ""), now)
		st.SetCondition(cond(v1.RouteConditionIngressReady, metav1.ConditionTrue, "", ""), now)
		st.SetCondition(cond(v1.RouteConditionReady, metav1.ConditionTrue, "", ""), now)
	}
	owned, err := r.reconcileK8sService(ctx, route, now)
	if err != nil {
		return nil, err
	}
	if !owned {
		msg := fmt.Sprintf("There is an existing placeholder Service %q that we do not own.", name)
		st.SetCondition(cond(v1.RouteConditionIngressReady, metav1.ConditionFalse, "NotOwned", msg), now)
		st.SetCondition(cond(v1.RouteConditionReady, metav1.ConditionFalse, "NotOwned", msg), now)
	}
	sortConditions(st.Conditions)
	if statusJSON(route.Status) != before {
		if route, err = r.routes.Update(ctx, route); err != nil {
			return nil, err
		}
	}
	return nil, r.labelRouteTargets(ctx, ns, name, route)
}

// containerStatuses is Knative's status.containerStatuses (or
// initContainerStatuses) of a revision: one entry per container, by name,
// in spec order (kn pins containers[i] to containerStatuses[i]), once any
// digest is known, with the image its instances run pinned by digest
// (REPO@sha256:…). An image given by digest is its own; a container no
// ready instance reports keeps what was recorded before (a revision at
// zero still says what it runs). serving is the index of the serving
// container, whose digest older records carry only in ImageDigest.
func containerStatuses(containers []v1.Container, prev []v1.ContainerStatus, ready []cluster.Instance, serving int) []v1.ContainerStatus {
	if len(containers) == 0 {
		return nil
	}
	known := map[string]string{}
	for _, cs := range prev {
		known[cs.Name] = cs.ImageDigest
	}
	out := make([]v1.ContainerStatus, 0, len(containers))
	found := false
	for i, c := range containers {
		digest := ""
		for _, in := range ready {
			d := in.ContainerDigests[c.Name]
			if d == "" && i == serving {
				d = in.ImageDigest
			}
			if d != "" {
				digest = d
			}
		}
		if digest == "" {
			digest = known[c.Name]
		}
		if digest != "" || strings.Contains(c.Image, "@") {
			if ref, err := cluster.DigestReference(c.Image, digest); err == nil {
				digest = ref
			}
		}
		found = found || digest != ""
		out = append(out, v1.ContainerStatus{Name: c.Name, ImageDigest: digest})
	}
	if !found {
		return nil
	}
	return out
}

// servingContainer is the index of the container that receives traffic:
// the one with a port, else the only one.
func servingContainer(cs []v1.Container) int {
	for i, c := range cs {
		if len(c.Ports) > 0 {
			return i
		}
	}
	if len(cs) == 1 {
		return 0
	}
	return -1
}
