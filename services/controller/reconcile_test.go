package controller

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/services/controller/resources"
)

// The synchronous tests call one reconcile function on a fake store and
// check what it wrote, Knative-style; the tests that run Lead cover the
// wiring between them.

type reconcileCase struct {
	name  string
	objs  []any
	opts  []func(*Options)
	key   string // name reconciled in namespace default
	err   bool   // the reconcile returns an error
	check func(t *testing.T, f *fixture)
}

func runCases(t *testing.T, cases []reconcileCase, reconcile func(f *fixture, name string) ([]workKey, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.objs, tc.opts...)
			_, err := reconcile(f, tc.key)
			if (err != nil) != tc.err {
				t.Fatalf("reconcile %s: err = %v, want error %v", tc.key, err, tc.err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func (f *fixture) service(t *testing.T, name string) *v1.Service {
	t.Helper()
	s, err := f.reg.Services().Get(f.ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) configuration(t *testing.T, name string) *v1.Configuration {
	t.Helper()
	c, err := f.reg.Configurations().Get(f.ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) revision(t *testing.T, name string) *v1.Revision {
	t.Helper()
	r, err := f.reg.Revisions().Get(f.ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) route(t *testing.T, name string) *v1.Route {
	t.Helper()
	r, err := f.reg.Routes().Get(f.ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) gone(t *testing.T, what string, err error) {
	t.Helper()
	if !errdefs.IsNotFound(err) {
		t.Fatalf("%s still exists (err = %v)", what, err)
	}
}

func wantConds(t *testing.T, what string, s metav1.Status, want string) {
	t.Helper()
	if got := conds(s); got != want {
		t.Fatalf("%s conditions:\n got %s\nwant %s", what, got, want)
	}
}

func TestReconcileService(t *testing.T) {
	hello := svc("hello")
	split := svc("hello", withTraffic(
		v1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](80)},
		v1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr[int64](20), Tag: "old"},
	))
	runCases(t, []reconcileCase{{
		name: "a new service gets its configuration and route",
		objs: []any{hello},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			if !reflect.DeepEqual(c.Spec.Template, hello.Spec.Template) {
				t.Fatalf("configuration spec = %+v", c.Spec)
			}
			if c.Metadata.Labels[v1.ServiceLabelKey] != "hello" || !controlledBy(&c.Metadata, hello.Metadata.UID) {
				t.Fatalf("configuration metadata = %+v", c.Metadata)
			}
			r := f.route(t, "hello")
			if len(r.Spec.Traffic) != 1 || r.Spec.Traffic[0].ConfigurationName != "hello" || *r.Spec.Traffic[0].Percent != 100 {
				t.Fatalf("route traffic = %+v", r.Spec.Traffic)
			}
			s := f.service(t, "hello")
			if s.Status.ObservedGeneration != 1 {
				t.Fatalf("observedGeneration = %d", s.Status.ObservedGeneration)
			}
			wantConds(t, "service", s.Status.Status, "ConfigurationsReady=Unknown/OutOfDate Ready=Unknown/OutOfDate RoutesReady=Unknown/OutOfDate")
		},
	}, {
		name: "traffic splits reach the route with configurationName filled in",
		objs: []any{split},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			want := resources.MakeRoute(split).Spec.Traffic
			if got := f.route(t, "hello").Spec.Traffic; !reflect.DeepEqual(got, want) {
				t.Fatalf("route traffic = %+v, want %+v", got, want)
			}
			if want[0].ConfigurationName != "hello" || want[1].ConfigurationName != "" || want[1].Tag != "old" {
				t.Fatalf("MakeRoute traffic = %+v", want)
			}
		},
	}, {
		name: "a changed template reaches the configuration",
		objs: []any{svc("hello", func(s *v1.Service) { s.Spec.Template.Spec.Containers[0].Image = "img:2" }), cfgFor(hello), routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			if c.Spec.Template.Spec.Containers[0].Image != "img:2" || c.Metadata.Generation != 2 {
				t.Fatalf("configuration image %q generation %d", c.Spec.Template.Spec.Containers[0].Image, c.Metadata.Generation)
			}
		},
	}, {
		name: "ready children make the service ready with their status",
		objs: []any{hello, cfgFor(hello, withCfgReady("hello-00001")), routeFor(hello, withRouteReady("hello-00001"))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			s := f.service(t, "hello")
			wantConds(t, "service", s.Status.Status, "ConfigurationsReady=True Ready=True RoutesReady=True")
			if s.Status.URL != "http://hello.default.example.com" || s.Status.LatestReadyRevisionName != "hello-00001" ||
				len(s.Status.Traffic) != 1 || s.Status.Traffic[0].RevisionName != "hello-00001" {
				t.Fatalf("status = %+v", s.Status)
			}
		},
	}, {
		name: "traffic not yet on the latest ready revision",
		objs: []any{hello, cfgFor(hello, withCfgReady("hello-00002")), routeFor(hello, withRouteReady("hello-00001"))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "service", f.service(t, "hello").Status.Status, "ConfigurationsReady=True Ready=Unknown/TrafficNotMigrated RoutesReady=Unknown/TrafficNotMigrated")
		},
	}, {
		name: "a failed first revision fails the service, with the route's reason",
		objs: []any{hello, cfgFor(hello, withCfgFailed("hello-00001", "Container failed with: Crashed...")), routeFor(hello, func(r *v1.Route) {
			r.Status.ObservedGeneration = 1
			r.Status.SetCondition(cond(v1.RouteConditionReady, metav1.ConditionFalse, "RevisionMissing", `Configuration "hello" does not have any ready Revision.`), testNow)
		})},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			s := f.service(t, "hello")
			wantConds(t, "service", s.Status.Status, "ConfigurationsReady=False/RevisionFailed Ready=False/RevisionMissing RoutesReady=False/RevisionMissing")
			if m := s.Status.GetCondition(v1.ServiceConditionRoutesReady).Message; m != `Configuration "hello" does not have any ready Revision.` {
				t.Fatalf("RoutesReady message = %q", m)
			}
			if m := s.Status.GetCondition(v1.ServiceConditionConfigurationsReady).Message; m != `Revision "hello-00001" failed with message: Container failed with: Crashed....` {
				t.Fatalf("ConfigurationsReady message = %q", m)
			}
		},
	}, {
		name: "a configuration the service does not own",
		objs: []any{hello, cfgFor(hello, withCfgOwner("someone-else"))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			s := f.service(t, "hello")
			wantConds(t, "service", s.Status.Status, "ConfigurationsReady=False/NotOwned Ready=False/NotOwned")
			if _, err := f.reg.Routes().Get(f.ctx, "default", "hello"); !errdefs.IsNotFound(err) {
				t.Fatalf("route created for a service that does not own its configuration")
			}
		},
	}, {
		name: "a deleted service writes nothing",
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Configurations().Get(f.ctx, "default", "hello")
			f.gone(t, "configuration", err)
		},
	}}, func(f *fixture, name string) ([]workKey, error) { return f.l.reconcileService(f.ctx, "default", name) })
}

func TestReconcileConfiguration(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello)
	cfg2 := cfgFor(hello, withCfgGeneration(2))
	other := cfgFor(svc("other"))
	runCases(t, []reconcileCase{{
		name: "stamps the revision of its generation",
		objs: []any{hello, cfg2},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00002")
			if r.Metadata.Labels[v1.ConfigurationLabelKey] != "hello" || r.Metadata.Labels[v1.ConfigurationGenerationLabel] != "2" ||
				r.Metadata.Labels[v1.ServiceLabelKey] != "hello" || !controlledBy(&r.Metadata, cfg2.Metadata.UID) {
				t.Fatalf("revision metadata = %+v", r.Metadata)
			}
			c := f.configuration(t, "hello")
			if c.Status.LatestCreatedRevisionName != "hello-00002" || c.Status.LatestReadyRevisionName != "" || c.Status.ObservedGeneration != 2 {
				t.Fatalf("status = %+v", c.Status)
			}
			wantConds(t, "configuration", c.Status.Status, "Ready=Unknown")
		},
	}, {
		name: "a ready revision becomes the latest ready",
		objs: []any{hello, cfg, revFor(cfg, withRevReady)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			if c.Status.LatestReadyRevisionName != "hello-00001" {
				t.Fatalf("latestReady = %q", c.Status.LatestReadyRevisionName)
			}
			wantConds(t, "configuration", c.Status.Status, "Ready=True")
		},
	}, {
		name: "a failed revision fails the configuration",
		objs: []any{hello, cfg, revFor(cfg, withRevFailed("boom"))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			wantConds(t, "configuration", c.Status.Status, "Ready=False/RevisionFailed")
			if m := c.Status.GetCondition("Ready").Message; m != `Revision "hello-00001" failed with message: boom.` {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "the revision name belongs to another configuration",
		objs: []any{hello, cfg, func() *v1.Revision {
			r := revFor(other)
			r.Metadata.Name = "hello-00001"
			return r
		}()},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			wantConds(t, "configuration", c.Status.Status, "Ready=False/NotOwned")
			if c.Status.LatestCreatedRevisionName != "" {
				t.Fatalf("latestCreated = %q", c.Status.LatestCreatedRevisionName)
			}
		},
	}, {
		name: "the configuration of a deleted service goes",
		objs: []any{cfg},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Configurations().Get(f.ctx, "default", "hello")
			f.gone(t, "configuration", err)
		},
	}, {
		name: "a deleted configuration's revisions go, others stay",
		objs: []any{revFor(cfg), revFor(cfg2), revFor(other)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			revs, _, _ := f.reg.Revisions().List(f.ctx, "default")
			if len(revs) != 1 || revs[0].Metadata.Name != "other-00001" {
				t.Fatalf("revisions left: %d", len(revs))
			}
		},
	}, {
		name: "the configuration of an earlier service of the same name goes",
		objs: []any{hello, cfgFor(hello, withCfgOwner("uid-svc-hello-before"))},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Configurations().Get(f.ctx, "default", "hello")
			f.gone(t, "configuration", err)
		},
	}, {
		name: "a configuration with an owner the controller does not follow stays",
		objs: []any{cfgFor(hello, func(c *v1.Configuration) {
			c.Metadata.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "x", UID: "uid-x", Controller: ptr(true)}}
		})},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			f.configuration(t, "hello")
		},
	}, {
		name: "the revisions of an earlier configuration of the same name go; the new one is stamped, never adopted",
		objs: []any{hello, cfg, revFor(cfgFor(hello, func(c *v1.Configuration) { c.Metadata.UID = "uid-cfg-hello-before" }), withRevReady)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			if !controlledBy(&r.Metadata, cfg.Metadata.UID) || r.Status.IsTrue(v1.RevisionConditionReady) {
				t.Fatalf("hello-00001 = %+v, want a new revision controlled by %s", r.Metadata, cfg.Metadata.UID)
			}
			c := f.configuration(t, "hello")
			if c.Status.LatestCreatedRevisionName != "hello-00001" || c.Status.LatestReadyRevisionName != "" {
				t.Fatalf("status = %+v", c.Status)
			}
		},
	}, {
		name: "a revision a client created with this configuration as controller is its own",
		objs: []any{hello, cfgFor(hello, func(c *v1.Configuration) { c.Spec.Template.Metadata.Name = "hello-imported" }),
			func() *v1.Revision {
				r := revFor(cfg, withRevReady)
				r.Metadata.Name = "hello-imported"
				return r
			}()},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			c := f.configuration(t, "hello")
			if c.Status.LatestCreatedRevisionName != "hello-imported" || c.Status.LatestReadyRevisionName != "hello-imported" {
				t.Fatalf("status = %+v", c.Status)
			}
			wantConds(t, "configuration", c.Status.Status, "Ready=True")
			if r := f.revision(t, "hello-imported"); r.Metadata.Labels[v1.RoutingStateLabelKey] == "" {
				t.Fatalf("the imported revision was not labelled with its routing state: %+v", r.Metadata.Labels)
			}
		},
	}}, func(f *fixture, name string) ([]workKey, error) {
		return f.l.reconcileConfiguration(f.ctx, "default", name)
	})
}

func TestReconcileRevision(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello)
	rev := revFor(cfg)
	runCases(t, []reconcileCase{{
		name: "no instance yet: deploying",
		objs: []any{cfg, rev, instance("other-00001", "a", ready("sha256:x"))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "Ready=Unknown/Deploying ResourcesAvailable=Unknown/Deploying")
			if r.Status.ActualReplicas == nil || *r.Status.ActualReplicas != 0 {
				t.Fatalf("actualReplicas = %v", r.Status.ActualReplicas)
			}
		},
	}, {
		name: "ready instances make it ready and active with their digest",
		objs: []any{cfg, rev, instance("hello-00001", "a", ready(digestA)), instance("hello-00001", "b", ready(digestA)), instance("hello-00001", "c")},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "Active=True ContainerHealthy=True Ready=True ResourcesAvailable=True")
			if *r.Status.ActualReplicas != 2 || len(r.Status.ContainerStatuses) != 1 || r.Status.ContainerStatuses[0].ImageDigest != "docker.io/library/img@"+digestA {
				t.Fatalf("status = %+v", r.Status)
			}
		},
	}, {
		name: "one digest per container, by name, pinned to each repository",
		objs: []any{cfg, revFor(cfg, func(r *v1.Revision) {
			r.Spec.Containers = []v1.Container{
				{Name: "app", Image: "127.0.0.1:5000/samples/hello:latest", Ports: []v1.ContainerPort{{ContainerPort: 8080}}},
				{Name: "side", Image: "ghcr.io/x/side@" + digestB},
			}
			r.Spec.InitContainers = []v1.Container{{Name: "setup", Image: "busybox"}}
		}), instance("hello-00001", "a", ready(digestA), func(in *cluster.Instance) {
			in.ContainerDigests = map[string]string{"side": "ghcr.io/x/side@" + digestB, "setup": "docker.io/library/busybox@" + digestB}
		})},
		key: "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			want := []v1.ContainerStatus{{Name: "app", ImageDigest: "127.0.0.1:5000/samples/hello@" + digestA}, {Name: "side", ImageDigest: "ghcr.io/x/side@" + digestB}}
			if !reflect.DeepEqual(r.Status.ContainerStatuses, want) {
				t.Errorf("containerStatuses = %+v, want %+v", r.Status.ContainerStatuses, want)
			}
			wantInit := []v1.ContainerStatus{{Name: "setup", ImageDigest: "docker.io/library/busybox@" + digestB}}
			if !reflect.DeepEqual(r.Status.InitContainerStatuses, wantInit) {
				t.Errorf("initContainerStatuses = %+v, want %+v", r.Status.InitContainerStatuses, wantInit)
			}
		},
	}, {
		name: "a container whose digest is not known yet keeps its place",
		objs: []any{cfg, revFor(cfg, func(r *v1.Revision) {
			r.Spec.Containers = []v1.Container{
				{Name: "side", Image: "ghcr.io/x/side:1"},
				{Name: "app", Image: "img:1", Ports: []v1.ContainerPort{{ContainerPort: 8080}}},
			}
		}), instance("hello-00001", "a", ready(digestA))},
		key: "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			want := []v1.ContainerStatus{{Name: "side"}, {Name: "app", ImageDigest: "docker.io/library/img@" + digestA}}
			if !reflect.DeepEqual(r.Status.ContainerStatuses, want) {
				t.Errorf("containerStatuses = %+v, want %+v", r.Status.ContainerStatuses, want)
			}
		},
	}, {
		name: "an image given by digest is its own digest, before any instance",
		objs: []any{cfg, revFor(cfg, func(r *v1.Revision) {
			r.Spec.Containers = []v1.Container{{Name: "user-container", Image: "127.0.0.1:5000/samples/hello@" + digestB}}
		})},
		key: "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			want := []v1.ContainerStatus{{Name: "user-container", ImageDigest: "127.0.0.1:5000/samples/hello@" + digestB}}
			if !reflect.DeepEqual(r.Status.ContainerStatuses, want) {
				t.Errorf("containerStatuses = %+v, want %+v", r.Status.ContainerStatuses, want)
			}
		},
	}, {
		name: "at zero the recorded digest stays",
		objs: []any{cfg, revFor(cfg, withRevReady, func(r *v1.Revision) {
			r.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "user-container", ImageDigest: "docker.io/library/img@" + digestA}}
		})},
		key: "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			want := []v1.ContainerStatus{{Name: "user-container", ImageDigest: "docker.io/library/img@" + digestA}}
			if !reflect.DeepEqual(r.Status.ContainerStatuses, want) {
				t.Errorf("containerStatuses = %+v, want %+v", r.Status.ContainerStatuses, want)
			}
		},
	}, {
		name: "a failed pull: ContainerMissing",
		objs: []any{cfg, rev, instance("hello-00001", "a", failed("ImagePullFailed", "pull img:1: not found"))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "ContainerHealthy=False/ContainerMissing Ready=False/ContainerMissing")
			if m := r.Status.GetCondition("Ready").Message; m != "pull img:1: not found" {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "a container that exits before ready: ExitCode with its last log lines",
		objs: []any{cfg, rev, instance("hello-00001", "a", exited(5, "Started...\nCrashed..."))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "ContainerHealthy=False/ExitCode5 Ready=False/ExitCode5")
			if m := r.Status.GetCondition("Ready").Message; m != "Container failed with: Started...\nCrashed..." {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "a container that exits 0 having logged nothing",
		objs: []any{cfg, rev, instance("hello-00001", "a", exited(0, ""))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "ContainerHealthy=False/ExitCode0 Ready=False/ExitCode0")
			if m := r.Status.GetCondition("ContainerHealthy").Message; m != "Container failed with: container exited with no error" {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "restarting after a failure stays failed",
		objs: []any{cfg, revFor(cfg, withRevContainerFailed("ExitCode5", "Container failed with: Crashed...")), instance("hello-00001", "a", phase(cluster.PhaseStarting))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "ContainerHealthy=False/ExitCode5 Ready=False/ExitCode5 ResourcesAvailable=Unknown/Deploying")
			if m := r.Status.GetCondition("Ready").Message; m != "Container failed with: Crashed..." {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "crashing past the progress deadline keeps the container's reason",
		objs: []any{cfg, revFor(cfg, withRevContainerFailed("ExitCode5", "Container failed with: Crashed..."))},
		opts: []func(*Options){withConfigs(map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}})},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status,
				"ContainerHealthy=False/ExitCode5 Ready=False/ExitCode5 ResourcesAvailable=False/ProgressDeadlineExceeded")
		},
	}, {
		name: "a ready instance after a failure makes it ready",
		objs: []any{cfg, revFor(cfg, withRevContainerFailed("ExitCode5", "Container failed with: Crashed...")), instance("hello-00001", "a", ready(digestA))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status, "Active=True ContainerHealthy=True Ready=True ResourcesAvailable=True")
		},
	}, {
		name: "a ready revision at zero stays ready, not active",
		objs: []any{cfg, revFor(cfg, withRevReady)},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status, "Active=False/NoTraffic Ready=True")
		},
	}, {
		name: "never ready past the progress deadline",
		objs: []any{cfg, revFor(cfg, withRevCreated(testNow.Add(-time.Minute)))},
		opts: []func(*Options){withConfigs(map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}})},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "Ready=False/ProgressDeadlineExceeded ResourcesAvailable=False/ProgressDeadlineExceeded")
			if m := r.Status.GetCondition("Ready").Message; m != "Unable to create pods for more than 30 seconds." {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "a container waiting for a missing ConfigMap keeps deploying",
		objs: []any{cfg, rev, instance("hello-00001", "a", failed("CreateContainerConfigError", `configmap "cfg" not found`))},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status, "Ready=Unknown/Deploying ResourcesAvailable=Unknown/Deploying")
		},
	}, {
		name: "waiting for a missing ConfigMap past the progress deadline says why",
		objs: []any{cfg, revFor(cfg, withRevCreated(testNow.Add(-time.Minute))),
			instance("hello-00001", "a", failed("CreateContainerConfigError", `configmap "cfg" not found`))},
		opts: []func(*Options){withConfigs(map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}})},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			r := f.revision(t, "hello-00001")
			wantConds(t, "revision", r.Status.Status, "Ready=False/CreateContainerConfigError ResourcesAvailable=False/CreateContainerConfigError")
			if m := r.Status.GetCondition("ResourcesAvailable").Message; m != `configmap "cfg" not found` {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "the missing ConfigMap stays the reason after the instance went",
		objs: []any{cfg, revFor(cfg, withRevCreated(testNow.Add(-time.Minute)), func(r *v1.Revision) {
			r.Status.SetCondition(cond(v1.RevisionConditionResourcesAvailable, metav1.ConditionFalse, "CreateContainerConfigError", `configmap "cfg" not found`), testNow)
		})},
		opts: []func(*Options){withConfigs(map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}})},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status, "Ready=False/CreateContainerConfigError ResourcesAvailable=False/CreateContainerConfigError")
		},
	}, {
		name: "the revision of a deleted configuration goes",
		objs: []any{rev},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Revisions().Get(f.ctx, "default", "hello-00001")
			f.gone(t, "revision", err)
		},
	}, {
		name: "the revision of an earlier configuration of the same name goes",
		objs: []any{cfgFor(hello, func(c *v1.Configuration) { c.Metadata.UID = "uid-cfg-hello-again" }), rev},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Revisions().Get(f.ctx, "default", "hello-00001")
			f.gone(t, "revision", err)
		},
	}, {
		name: "a revision without owner references stays",
		objs: []any{revFor(cfg, func(r *v1.Revision) { r.Metadata.OwnerReferences = nil })},
		key:  "hello-00001",
		check: func(t *testing.T, f *fixture) {
			f.revision(t, "hello-00001")
		},
	}}, func(f *fixture, name string) ([]workKey, error) { return f.l.reconcileRevision(f.ctx, "default", name) })
}

func TestReconcileRevisionFollowsTheInstanceIndex(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello)
	f := newFixture(t, []any{cfg, revFor(cfg)})
	in := instance("hello-00001", "a", ready(digestA))
	f.seed(t, in)
	kvs, rev, _ := f.st.List(f.ctx, store.InstancePrefix)
	f.l.insts.Apply(store.Feed{Puts: kvs, Rev: rev})
	if got := f.queued(); !slices.Equal(got, []string{"revision/default/hello-00001"}) {
		t.Fatalf("an instance change queued %v", got)
	}
	if _, err := f.l.reconcileRevision(f.ctx, "default", "hello-00001"); err != nil {
		t.Fatal(err)
	}
	if !f.revision(t, "hello-00001").Status.IsTrue("Ready") {
		t.Fatal("revision not ready with a ready instance")
	}
	f.queued() // what the status write queued
	// The instance goes: its last value tells the index which revision lost it.
	if err := f.st.Delete(f.ctx, store.InstanceKey("n1", in.Instance)); err != nil {
		t.Fatal(err)
	}
	f.l.insts.Apply(store.Feed{Dels: []string{store.InstanceKey("n1", in.Instance)}, Rev: rev + 1})
	if got := f.queued(); !slices.Equal(got, []string{"revision/default/hello-00001"}) {
		t.Fatalf("an instance delete queued %v", got)
	}
	if n := len(f.l.instances.ForRevision("default", "hello-00001")); n != 0 {
		t.Fatalf("index still holds %d instances", n)
	}
}

func TestReconcileRoute(t *testing.T) {
	hello := svc("hello")
	readyCfg := cfgFor(hello, withCfgReady("hello-00001"))
	readyRev := revFor(readyCfg, withRevReady)
	runCases(t, []reconcileCase{{
		name: "latestRevision traffic resolves to the latest ready revision",
		objs: []any{hello, readyCfg, readyRev, routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=True IngressReady=True Ready=True")
			if r.Status.URL != "http://hello.default.example.com" || r.Status.Address.URL != "http://hello.default.svc.cluster.local" {
				t.Fatalf("urls = %q %+v", r.Status.URL, r.Status.Address)
			}
			if len(r.Status.Traffic) != 1 || r.Status.Traffic[0].RevisionName != "hello-00001" || !*r.Status.Traffic[0].LatestRevision {
				t.Fatalf("traffic = %+v", r.Status.Traffic)
			}
		},
	}, {
		name: "no ready revision yet",
		objs: []any{hello, cfgFor(hello), routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=Unknown/RevisionMissing IngressReady=Unknown Ready=Unknown/RevisionMissing")
			if len(r.Status.Traffic) != 0 {
				t.Fatalf("traffic = %+v", r.Status.Traffic)
			}
		},
	}, {
		name: "a configuration that failed without a ready revision fails the route",
		objs: []any{hello, cfgFor(hello, withCfgFailed("hello-00001", "boom")), revFor(cfgFor(hello), withRevContainerFailed("ExitCode1", "boom")), routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=False/RevisionMissing IngressReady=Unknown Ready=False/RevisionMissing")
			if m := r.Status.GetCondition("Ready").Message; m != `Configuration "hello" does not have any ready Revision.` {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "a failed configuration keeps serving its latest ready revision",
		objs: []any{hello, cfgFor(hello, withCfgReady("hello-00001"), withCfgFailed("hello-00002", "boom")), readyRev, routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=True IngressReady=True Ready=True")
			if len(r.Status.Traffic) != 1 || r.Status.Traffic[0].RevisionName != "hello-00001" {
				t.Fatalf("traffic = %+v", r.Status.Traffic)
			}
		},
	}, {
		name: "a pinned revision that failed fails the route",
		objs: []any{hello, readyCfg, revFor(readyCfg, withRevContainerFailed("ExitCode1", "boom")), routeFor(svc("hello", withTraffic(
			v1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr[int64](100)},
		)))},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			r := f.route(t, "hello")
			wantConds(t, "route", r.Status.Status, "AllTrafficAssigned=False/RevisionMissing IngressReady=Unknown Ready=False/RevisionMissing")
			if m := r.Status.GetCondition("Ready").Message; m != `Revision "hello-00001" failed to become ready.` {
				t.Fatalf("message = %q", m)
			}
		},
	}, {
		name: "a tagged pinned revision gets its tag URL",
		objs: []any{hello, readyCfg, readyRev, routeFor(svc("hello", withTraffic(
			v1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](50)},
			v1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr[int64](50), Tag: "pinned"},
		)))},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			tr := f.route(t, "hello").Status.Traffic
			if len(tr) != 2 || tr[1].URL != "http://pinned-hello.default.example.com" || *tr[1].LatestRevision || tr[1].RevisionName != "hello-00001" {
				t.Fatalf("traffic = %+v", tr)
			}
		},
	}, {
		name: "a cluster-local route gets cluster-local URLs",
		objs: []any{readyCfg, readyRev, func() *v1.Route {
			s := svc("hello", withServiceLabels(v1.VisibilityLabelKey, v1.VisibilityClusterLocal))
			return routeFor(s)
		}(), svc("hello", withServiceLabels(v1.VisibilityLabelKey, v1.VisibilityClusterLocal))},
		key: "hello",
		check: func(t *testing.T, f *fixture) {
			if u := f.route(t, "hello").Status.URL; u != "http://hello.default.svc.cluster.local" {
				t.Fatalf("url = %q", u)
			}
		},
	}, {
		name: "the route of a deleted service goes",
		objs: []any{routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Routes().Get(f.ctx, "default", "hello")
			f.gone(t, "route", err)
		},
	}, {
		name: "the route of an earlier service of the same name goes",
		objs: []any{svc("hello", func(s *v1.Service) { s.Metadata.UID = "uid-svc-hello-again" }), routeFor(hello)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			_, err := f.reg.Routes().Get(f.ctx, "default", "hello")
			f.gone(t, "route", err)
		},
	}}, func(f *fixture, name string) ([]workKey, error) { return f.l.reconcileRoute(f.ctx, "default", name) })
}

// A Revision or Configuration change queues only the Routes that reference
// it, as the tracker knows them.
func TestRevisionEventsQueueOnlyTrackedRoutes(t *testing.T) {
	hello, other := svc("hello"), svc("other")
	hcfg := cfgFor(hello, withCfgReady("hello-00001"))
	f := newFixture(t, []any{hello, other, hcfg, revFor(hcfg), routeFor(hello, withRouteReady("hello-00001")), routeFor(other)})
	r := revFor(hcfg, withRevReady)
	r.Metadata.ResourceVersion = ""
	if _, err := f.l.revisions.Update(f.ctx, r); err != nil {
		t.Fatal(err)
	}
	want := []string{"configuration/default/hello", "revision/default/hello-00001", "route/default/hello"}
	if got := f.queued(); !slices.Equal(got, want) {
		t.Fatalf("a revision update queued %v, want %v", got, want)
	}
}

func TestReconcileDomainMapping(t *testing.T) {
	hello := svc("hello", func(s *v1.Service) {
		s.Status.Address = &metav1.Addressable{URL: "http://hello.default.svc.cluster.local"}
	})
	readyRoute := routeFor(hello, withRouteReady("hello-00001"))
	const domain = "hello.example.org"
	dmOf := func(f *fixture, ns string) *v1beta1.DomainMapping {
		got, err := f.reg.DomainMappings().Get(f.ctx, ns, domain)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	claimOf := func(t *testing.T, f *fixture) string {
		t.Helper()
		kv, err := f.st.Get(f.ctx, store.DomainClaimKey(domain))
		if errdefs.IsNotFound(err) {
			return ""
		}
		c, err := decodeClaim(kv)
		if err != nil {
			t.Fatal(err)
		}
		return c.Namespace
	}
	runCases(t, []reconcileCase{{
		name: "claims the domain; the ref does not resolve yet",
		objs: []any{domainMapping("default", domain)},
		key:  domain,
		check: func(t *testing.T, f *fixture) {
			if ns := claimOf(t, f); ns != "default" {
				t.Fatalf("claim held by %q", ns)
			}
			dm := dmOf(f, "default")
			wantConds(t, "mapping", dm.Status.Status, "CertificateProvisioned=True/TLSNotEnabled DomainClaimed=True IngressReady=Unknown/IngressNotConfigured Ready=False/ResolveFailed ReferenceResolved=False/ResolveFailed")
			if dm.Status.URL != "http://"+domain {
				t.Fatalf("url = %q", dm.Status.URL)
			}
		},
	}, {
		name: "ready with a ready route and a TLS secret",
		objs: []any{hello, readyRoute, domainMapping("default", domain, func(dm *v1beta1.DomainMapping) { dm.Spec.TLS = &v1beta1.SecretTLS{SecretName: "cert"} })},
		key:  domain,
		check: func(t *testing.T, f *fixture) {
			dm := dmOf(f, "default")
			if !dm.IsReady() || dm.Status.URL != "https://"+domain {
				t.Fatalf("status = %+v", dm.Status)
			}
		},
	}, {
		name: "another namespace holds the claim",
		objs: []any{hello, readyRoute, domainMapping("default", domain), claimFixture{domain, "other"}},
		key:  domain,
		check: func(t *testing.T, f *fixture) {
			if ns := claimOf(t, f); ns != "other" {
				t.Fatalf("claim moved to %q", ns)
			}
			c := dmOf(f, "default").Status.GetCondition(v1beta1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "DomainAlreadyClaimed" {
				t.Fatalf("Ready = %+v", c)
			}
		},
	}, {
		name: "a deleted mapping releases its claim",
		objs: []any{claimFixture{domain, "default"}},
		key:  domain,
		check: func(t *testing.T, f *fixture) {
			if ns := claimOf(t, f); ns != "" {
				t.Fatalf("claim still held by %q", ns)
			}
		},
	}, {
		name: "a deleted mapping leaves another namespace's claim",
		objs: []any{claimFixture{domain, "other"}},
		key:  domain,
		check: func(t *testing.T, f *fixture) {
			if ns := claimOf(t, f); ns != "other" {
				t.Fatalf("claim = %q", ns)
			}
		},
	}}, func(f *fixture, name string) ([]workKey, error) {
		return f.l.reconcileDomainMapping(f.ctx, "default", name)
	})

	t.Run("the next mapping in line is queued after a release", func(t *testing.T) {
		f := newFixture(t, []any{claimFixture{domain, "default"}, domainMapping("other", domain)})
		more, err := f.l.reconcileDomainMapping(f.ctx, "default", domain)
		if err != nil {
			t.Fatal(err)
		}
		if want := []workKey{{kDomainMapping, "other", domain}}; !slices.Equal(more, want) {
			t.Fatalf("more = %v, want %v", more, want)
		}
	})
}

func TestRevisionGC(t *testing.T) {
	hello := svc("hello", withServiceGeneration(4))
	cfgAt := func(g int64) *v1.Configuration { return cfgFor(hello, withCfgGeneration(g)) }
	latest := cfgFor(hello, withCfgGeneration(4), withCfgReady("hello-00004"))
	old := testNow.Add(-3 * time.Hour)
	reserve := func(r *v1.Revision) { withRevRoutingState(v1.RoutingStateReserve, old)(r) }
	byCount := withConfigs(map[string]map[string]string{config.NameGC: {
		"retain-since-create-time": "disabled", "retain-since-last-active-time": "disabled",
		"min-non-active-revisions": "0", "max-non-active-revisions": "1",
	}})
	byAge := withConfigs(map[string]map[string]string{config.NameGC: {
		"retain-since-create-time": "1h", "retain-since-last-active-time": "1h",
		"min-non-active-revisions": "0", "max-non-active-revisions": "disabled",
	}})
	names := func(t *testing.T, f *fixture) []string {
		revs, _, err := f.reg.Revisions().List(f.ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range revs {
			out = append(out, r.Metadata.Name)
		}
		return out
	}
	route := routeFor(hello, withRouteReady("hello-00004"))
	runCases(t, []reconcileCase{{
		name: "routing state labels follow the routes",
		objs: []any{hello, latest, route, revFor(cfgAt(3), withRevReady), revFor(latest, withRevReady)},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			r3, r4 := f.revision(t, "hello-00003"), f.revision(t, "hello-00004")
			if r3.Metadata.Labels[v1.RoutingStateLabelKey] != v1.RoutingStateReserve || r4.Metadata.Labels[v1.RoutingStateLabelKey] != v1.RoutingStateActive {
				t.Fatalf("routing states %q %q", r3.Metadata.Labels[v1.RoutingStateLabelKey], r4.Metadata.Labels[v1.RoutingStateLabelKey])
			}
			if a := r3.Metadata.Annotations[v1.RoutingStateModifiedAnnotation]; a != testNow.Format(time.RFC3339Nano) {
				t.Fatalf("routing state modified = %q", a)
			}
		},
	}, {
		name: "above max-non-active-revisions the oldest non-active goes",
		objs: []any{hello, latest, route,
			revFor(cfgAt(1), reserve), revFor(cfgAt(2), withRevRoutingState(v1.RoutingStateReserve, old.Add(time.Minute))),
			revFor(cfgAt(3), withRevRoutingState(v1.RoutingStateReserve, old.Add(2*time.Minute))), revFor(latest, withRevReady)},
		opts: []func(*Options){byCount},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			if got, want := names(t, f), []string{"hello-00003", "hello-00004"}; !slices.Equal(got, want) {
				t.Fatalf("revisions = %v, want %v", got, want)
			}
		},
	}, {
		name: "stale revisions go; no-gc, routed and young ones stay",
		objs: []any{hello, latest,
			routeFor(hello, withRouteReady("hello-00004"), func(r *v1.Route) {
				r.Status.Traffic = append(r.Status.Traffic, v1.TrafficTarget{RevisionName: "hello-00002", Percent: ptr[int64](0)})
			}),
			revFor(cfgAt(1), reserve, withRevCreated(old), withRevAnnotation(v1.NoGCAnnotation, "true")),
			revFor(cfgAt(2), withRevCreated(old)),
			revFor(cfgAt(3), reserve, withRevCreated(old)),
			revFor(cfgAt(5), reserve, withRevCreated(testNow.Add(-time.Minute))),
			revFor(latest, withRevReady, withRevCreated(old))},
		opts: []func(*Options){byAge},
		key:  "hello",
		check: func(t *testing.T, f *fixture) {
			if got, want := names(t, f), []string{"hello-00001", "hello-00002", "hello-00004", "hello-00005"}; !slices.Equal(got, want) {
				t.Fatalf("revisions = %v, want %v", got, want)
			}
		},
	}}, func(f *fixture, name string) ([]workKey, error) {
		return f.l.reconcileConfiguration(f.ctx, "default", name)
	})
}

// A Configuration change queues the Routes that name it, not the others.
func TestConfigurationEventsQueueOnlyTrackedRoutes(t *testing.T) {
	hello, other := svc("hello"), svc("other")
	hcfg := cfgFor(hello)
	f := newFixture(t, []any{hello, other, hcfg, routeFor(hello), routeFor(other)})
	c := cfgFor(hello, withCfgReady("hello-00001"))
	if _, err := f.l.configurations.Update(f.ctx, c); err != nil {
		t.Fatal(err)
	}
	want := []string{"configuration/default/hello", "route/default/hello", "service/default/hello"}
	if got := f.queued(); !slices.Equal(got, want) {
		t.Fatalf("a configuration update queued %v, want %v", got, want)
	}
}

// Resync queues every Configuration and Revision from the caches.
func TestResyncQueuesFromTheCaches(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello)
	f := newFixture(t, []any{cfg, revFor(cfg), revFor(cfgFor(hello, withCfgGeneration(2)))})
	timers := &loopTimers{resync: time.NewTimer(time.Hour)}
	defer timers.resync.Stop()
	f.l.onResync(timers)
	want := []string{"configuration/default/hello", "revision/default/hello-00001", "revision/default/hello-00002"}
	if got := f.queued(); !slices.Equal(got, want) {
		t.Fatalf("resync queued %v, want %v", got, want)
	}
}

// The instance that waited for its ConfigMap may be gone when the
// progress deadline passes; the revision still fails with its reason.
func TestReconcileRevisionRemembersWaiting(t *testing.T) {
	hello := svc("hello")
	cfg := cfgFor(hello)
	f := newFixture(t, []any{cfg, revFor(cfg, withRevCreated(testNow.Add(-20*time.Second)))},
		withConfigs(map[string]map[string]string{config.NameDeployment: {"progress-deadline": "30s"}}))
	in := instance("hello-00001", "a", failed("CreateContainerConfigError", `secret "s" not found`))
	f.seed(t, in)
	kvs, rev, _ := f.st.List(f.ctx, store.InstancePrefix)
	f.l.insts.Apply(store.Feed{Puts: kvs, Rev: rev})
	if _, err := f.l.reconcileRevision(f.ctx, "default", "hello-00001"); err != nil {
		t.Fatal(err)
	}
	wantConds(t, "revision", f.revision(t, "hello-00001").Status.Status, "Ready=Unknown/Deploying ResourcesAvailable=Unknown/Deploying")

	if err := f.st.Delete(f.ctx, store.InstanceKey("n1", in.Instance)); err != nil {
		t.Fatal(err)
	}
	f.l.insts.Apply(store.Feed{Dels: []string{store.InstanceKey("n1", in.Instance)}, Rev: rev + 1})
	f.l.revs.cache.Apply(func() store.Feed {
		kvs, rev, _ := f.st.List(f.ctx, f.reg.Revisions().Key("default", "hello-00001"))
		return store.Feed{Puts: kvs, Rev: rev}
	}())
	f.l.reconciler.opts.Now = func() time.Time { return testNow.Add(time.Minute) }
	if _, err := f.l.reconcileRevision(f.ctx, "default", "hello-00001"); err != nil {
		t.Fatal(err)
	}
	r := f.revision(t, "hello-00001")
	wantConds(t, "revision", r.Status.Status, "Ready=False/CreateContainerConfigError ResourcesAvailable=False/CreateContainerConfigError")
	if m := r.Status.GetCondition("ResourcesAvailable").Message; m != `secret "s" not found` {
		t.Fatalf("message = %q", m)
	}
}
