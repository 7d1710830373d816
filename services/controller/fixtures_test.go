package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kiln-serving/kiln/api/config"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// testNow is the fixed clock of the synchronous reconcile tests.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a reconciler over a fake store holding the seeded objects,
// its caches listed once, as Lead's are before the first reconcile.
type fixture struct {
	ctx context.Context
	st  *memstore.Store
	reg *registry.Registry // unfenced, to read what the reconciler wrote
	l   *leader
}

// staticConfig is a ConfigSource that never changes.
type staticConfig struct{ snap *config.Snapshot }

func (s staticConfig) Current() *config.Snapshot { return s.snap }
func (s staticConfig) Changed() <-chan struct{}  { return nil }
func (s staticConfig) Synced() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func withConfigs(docs map[string]map[string]string) func(*Options) {
	return func(o *Options) {
		o.Config = staticConfig{config.SnapshotOf(docs, func(string, error) {})}
	}
}

func newFixture(t *testing.T, objs []any, opts ...func(*Options)) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	st := memstore.New()
	f := &fixture{ctx: ctx, st: st, reg: registry.New(st)}
	for _, o := range objs {
		f.seed(t, o)
	}
	o := Options{Domain: resources.DomainConfig{Domain: "example.com"}, Now: func() time.Time { return testNow }}
	for _, opt := range opts {
		opt(&o)
	}
	fenceKey := store.ElectionKey("controller") + "/1"
	rev, err := st.Put(ctx, fenceKey, []byte("me"))
	if err != nil {
		t.Fatal(err)
	}
	c := New(st, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.l = newLeader(c, store.Fenced(st, &store.Fence{Key: fenceKey, Rev: rev}), func() time.Time { return testNow })
	for _, src := range []store.Source{f.l.svcs.cache, f.l.cfgs.cache, f.l.revs.cache, f.l.rts.cache, f.l.dms.cache, f.l.insts, f.l.claimsC, f.l.k8sSvcs} {
		kvs, rev, err := st.List(ctx, src.Prefix())
		if err != nil {
			t.Fatal(err)
		}
		src.Apply(store.Feed{Reset: true, Puts: kvs, Rev: rev})
	}
	// Only what the reconcile under test queues is of interest.
	for f.l.q.Len() > 0 {
		k, _ := f.l.q.Get()
		f.l.q.Done(k)
	}
	return f
}

// seed stores obj as is: fixtures choose uid, generation and status.
func (f *fixture) seed(t *testing.T, obj any) {
	t.Helper()
	var key string
	switch o := obj.(type) {
	case *v1.Service:
		key = f.reg.Services().Key(o.Metadata.Namespace, o.Metadata.Name)
	case *v1.Configuration:
		key = f.reg.Configurations().Key(o.Metadata.Namespace, o.Metadata.Name)
	case *v1.Revision:
		key = f.reg.Revisions().Key(o.Metadata.Namespace, o.Metadata.Name)
	case *v1.Route:
		key = f.reg.Routes().Key(o.Metadata.Namespace, o.Metadata.Name)
	case *v1beta1.DomainMapping:
		key = f.reg.DomainMappings().Key(o.Metadata.Namespace, o.Metadata.Name)
	case cluster.Instance:
		key = store.InstanceKey(o.Node, o.Instance)
	case *corev1.Service:
		key = store.ServiceKey(o.Namespace, o.Name)
	case claimFixture:
		key = store.DomainClaimKey(o.domain)
		obj = DomainClaim{Namespace: o.ns}
	default:
		t.Fatalf("cannot seed %T", obj)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Put(f.ctx, key, b); err != nil {
		t.Fatal(err)
	}
}

// queued drains the keys the reconcile queued, as kind/ns/name, sorted.
func (f *fixture) queued() []string {
	var out []string
	for f.l.q.Len() > 0 {
		k, _ := f.l.q.Get()
		f.l.q.Done(k)
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

// conds renders conditions as Type=Status/Reason, sorted by type.
func conds(s metav1.Status) string {
	var out []string
	for _, c := range s.Conditions {
		e := c.Type + "=" + string(c.Status)
		if c.Reason != "" {
			e += "/" + c.Reason
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func ptr[T any](v T) *T { return &v }

// --- builders ---

func svc(name string, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindService},
		Metadata: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-svc-" + name, Generation: 1,
			CreationTimestamp: metav1.NewTime(testNow.Add(-time.Hour))},
	}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withTraffic(ts ...v1.TrafficTarget) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Traffic = ts }
}

func withServiceLabels(kv ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Metadata.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Metadata.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withServiceGeneration(g int64) func(*v1.Service) {
	return func(s *v1.Service) { s.Metadata.Generation = g }
}

// cfgFor is the Configuration s owns, as the service reconciler makes it.
func cfgFor(s *v1.Service, opts ...func(*v1.Configuration)) *v1.Configuration {
	c := resources.MakeConfiguration(s)
	c.Metadata.UID = "uid-cfg-" + c.Metadata.Name
	c.Metadata.Generation = 1
	c.Metadata.CreationTimestamp = metav1.NewTime(testNow.Add(-time.Hour))
	for _, o := range opts {
		o(c)
	}
	return c
}

func withCfgGeneration(g int64) func(*v1.Configuration) {
	return func(c *v1.Configuration) { c.Metadata.Generation = g }
}

// withCfgReady says the configuration observed its generation and rev is
// its latest ready and created revision.
func withCfgReady(rev string) func(*v1.Configuration) {
	return func(c *v1.Configuration) {
		c.Status.ObservedGeneration = c.Metadata.Generation
		c.Status.LatestCreatedRevisionName = rev
		c.Status.LatestReadyRevisionName = rev
		c.Status.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionTrue, "", ""), testNow)
	}
}

// withCfgFailed says the configuration observed its generation and its
// latest created revision, rev, failed with msg.
func withCfgFailed(rev, msg string) func(*v1.Configuration) {
	return func(c *v1.Configuration) {
		c.Status.ObservedGeneration = c.Metadata.Generation
		c.Status.LatestCreatedRevisionName = rev
		c.Status.SetCondition(cond(v1.ConfigurationConditionReady, metav1.ConditionFalse, "RevisionFailed",
			fmt.Sprintf("Revision %q failed with message: %s.", rev, msg)), testNow)
	}
}

func withCfgOwner(uid string) func(*v1.Configuration) {
	return func(c *v1.Configuration) { c.Metadata.OwnerReferences[0].UID = uid }
}

// routeFor is the Route s owns, as the service reconciler makes it.
func routeFor(s *v1.Service, opts ...func(*v1.Route)) *v1.Route {
	r := resources.MakeRoute(s)
	r.Metadata.UID = "uid-route-" + r.Metadata.Name
	r.Metadata.Generation = 1
	for _, o := range opts {
		o(r)
	}
	return r
}

// withRouteReady says the route observed its generation and sends all
// traffic to rev.
func withRouteReady(rev string) func(*v1.Route) {
	return func(r *v1.Route) {
		r.Status.ObservedGeneration = r.Metadata.Generation
		r.Status.URL = "http://" + r.Metadata.Name + "." + r.Metadata.Namespace + ".example.com"
		r.Status.Address = &metav1.Addressable{URL: "http://" + r.Metadata.Name + "." + r.Metadata.Namespace + ".svc.cluster.local"}
		r.Status.Traffic = []v1.TrafficTarget{{RevisionName: rev, LatestRevision: ptr(true), Percent: ptr[int64](100)}}
		r.Status.SetCondition(cond(v1.RouteConditionReady, metav1.ConditionTrue, "", ""), testNow)
	}
}

// revFor is the revision c stamps for its current generation.
func revFor(c *v1.Configuration, opts ...func(*v1.Revision)) *v1.Revision {
	r := resources.MakeRevision(c)
	r.Metadata.UID = "uid-rev-" + r.Metadata.Name
	r.Metadata.Generation = 1
	r.Metadata.CreationTimestamp = metav1.NewTime(testNow.Add(-time.Minute))
	for _, o := range opts {
		o(r)
	}
	return r
}

func withRevReady(r *v1.Revision) {
	r.Status.ObservedGeneration = 1
	r.Status.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionTrue, "", ""), testNow)
}

func withRevFailed(msg string) func(*v1.Revision) {
	return func(r *v1.Revision) {
		r.Status.ObservedGeneration = 1
		r.Status.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionFalse, "ExitCode", msg), testNow)
	}
}

// withRevContainerFailed says the revision's container failed, as the
// revision reconciler marks it.
func withRevContainerFailed(reason, msg string) func(*v1.Revision) {
	return func(r *v1.Revision) {
		r.Status.ObservedGeneration = 1
		r.Status.SetCondition(cond(v1.RevisionConditionContainerHealthy, metav1.ConditionFalse, reason, msg), testNow)
		r.Status.SetCondition(cond(v1.RevisionConditionReady, metav1.ConditionFalse, reason, msg), testNow)
	}
}

func withRevCreated(t time.Time) func(*v1.Revision) {
	return func(r *v1.Revision) { r.Metadata.CreationTimestamp = metav1.NewTime(t) }
}

func withRevRoutingState(state string, since time.Time) func(*v1.Revision) {
	return func(r *v1.Revision) {
		r.Metadata.Labels[v1.RoutingStateLabelKey] = state
		if r.Metadata.Annotations == nil {
			r.Metadata.Annotations = map[string]string{}
		}
		r.Metadata.Annotations[v1.RoutingStateModifiedAnnotation] = since.Format(time.RFC3339Nano)
	}
}

func withRevAnnotation(k, v string) func(*v1.Revision) {
	return func(r *v1.Revision) {
		if r.Metadata.Annotations == nil {
			r.Metadata.Annotations = map[string]string{}
		}
		r.Metadata.Annotations[k] = v
	}
}

// instance is an instance of rev on node n1.
func instance(rev, suffix string, opts ...func(*cluster.Instance)) cluster.Instance {
	in := cluster.Instance{Instance: rev + "-" + suffix, Node: "n1", Namespace: "default", Revision: rev, Phase: cluster.PhaseRunning}
	for _, o := range opts {
		o(&in)
	}
	return in
}

// digestA is a digest instances report in tests.
const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// digestB is another.
const digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func ready(digest string) func(*cluster.Instance) {
	return func(in *cluster.Instance) { in.Ready, in.ImageDigest = true, digest }
}

func failed(reason, msg string) func(*cluster.Instance) {
	return func(in *cluster.Instance) { in.Phase, in.Reason, in.Message = cluster.PhaseFailed, reason, msg }
}

// exited says the instance failed because its container exited with code,
// having logged logTail last.
func exited(code int32, logTail string) func(*cluster.Instance) {
	return func(in *cluster.Instance) {
		in.Phase, in.Reason, in.Message = cluster.PhaseFailed, "ContainerExited", fmt.Sprintf("exited with code %d before becoming ready", code)
		in.ExitCode, in.TerminationMessage = &code, logTail
	}
}

func phase(p string) func(*cluster.Instance) {
	return func(in *cluster.Instance) { in.Phase = p }
}

func domainMapping(ns, name string, opts ...func(*v1beta1.DomainMapping)) *v1beta1.DomainMapping {
	dm := newDM(ns, name, "hello")
	dm.TypeMeta = metav1.TypeMeta{APIVersion: v1beta1.APIVersion, Kind: v1beta1.KindDomainMapping}
	dm.Metadata.UID = "uid-dm-" + ns
	dm.Metadata.Generation = 1
	for _, o := range opts {
		o(dm)
	}
	return dm
}

// claimFixture seeds domainclaims/<domain> held by ns.
type claimFixture struct{ domain, ns string }
