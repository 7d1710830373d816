package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
	"k8s.io/client-go/util/retry"

	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	servingclient "knative.dev/serving/pkg/client/clientset/versioned"

	"github.com/kiln-serving/kiln/internal/testenv"
)

var ksvcGVR = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}

func ksvcObject(name, image, team, response string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.knative.dev/v1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{"team": team}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"image": image, "env": []any{map[string]any{"name": "RESPONSE", "value": response}}}},
		}}},
	}}
}

// TestClientGo uses kiln's API the way Kubernetes programs do, through
// client-go: discovery and a RESTMapper, the dynamic client for Knative's
// kinds (create, update with retry on conflict, list with selectors and
// pages, watch from a resourceVersion through a compaction), Knative's own
// typed clientset, and client-go's typed clientset, speaking protobuf, for
// core kinds.
func TestClientGo(t *testing.T) {
	c := startCluster(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Discovery and a RESTMapper resolve Knative's short names.
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	for short, want := range map[string]schema.GroupVersionResource{
		"ksvc": ksvcGVR, "kservice": ksvcGVR,
		"rev": {Group: "serving.knative.dev", Version: "v1", Resource: "revisions"},
		"rt":  {Group: "serving.knative.dev", Version: "v1", Resource: "routes"},
		"cfg": {Group: "serving.knative.dev", Version: "v1", Resource: "configurations"},
		"dm":  {Group: "serving.knative.dev", Version: "v1beta1", Resource: "domainmappings"},
	} {
		got, err := mapper.ResourceFor(schema.GroupVersionResource{Resource: short})
		if err != nil || got != want {
			t.Fatalf("RESTMapper %s: %v %v, want %v", short, got, err, want)
		}
	}
	m, err := mapper.RESTMapping(schema.GroupKind{Group: "serving.knative.dev", Kind: "Service"})
	if err != nil || m.Resource != ksvcGVR || m.Scope.Name() != "namespace" {
		t.Fatalf("RESTMapping Service: %+v %v", m, err)
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svcs := dyn.Resource(ksvcGVR).Namespace("default")
	names := []string{"cg-a1", "cg-a2", "cg-b1", "cg-b2"}
	for i, n := range names {
		team := "a"
		if i >= 2 {
			team = "b"
		}
		if _, err := svcs.Create(ctx, ksvcObject(n, c.image, team, "hello "+n), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
	if _, err := svcs.Create(ctx, ksvcObject("cg-a1", c.image, "a", "again"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	testenv.EventuallyNil(t, 90*time.Second, func() error {
		for _, n := range names {
			code, body, err := c.get(n + ".default.example.com")
			if err != nil || code != 200 || strings.TrimSpace(body) != "hello "+n {
				return fmt.Errorf("%s: %d %q %v", n, code, body, err)
			}
		}
		return nil
	})

	// Selectors and pages.
	l, err := svcs.List(ctx, metav1.ListOptions{LabelSelector: "team=a"})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("labelSelector team=a: %v %v", l, err)
	}
	l, err = svcs.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cg-b2"})
	if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != "cg-b2" {
		t.Fatalf("fieldSelector: %v %v", l, err)
	}
	first, err := svcs.List(ctx, metav1.ListOptions{Limit: 3})
	if err != nil || len(first.Items) != 3 || first.GetContinue() == "" {
		t.Fatalf("first page: %d items, continue %q, %v", len(first.Items), first.GetContinue(), err)
	}
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return svcs.List(ctx, o) })
	p.PageSize = 1
	seen := map[string]bool{}
	if err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
		seen[o.(*unstructured.Unstructured).GetName()] = true
		return nil
	}); err != nil || len(seen) != len(names) {
		t.Fatalf("paged list: %v %v", seen, err)
	}

	// Optimistic concurrency: a stale update conflicts; RetryOnConflict wins.
	stale, err := svcs.Get(ctx, "cg-a1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Patch(ctx, "cg-a1", types.MergePatchType, []byte(`{"metadata":{"annotations":{"by":"patch"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.SetAnnotations(map[string]string{"by": "stale"})
	if _, err := svcs.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := svcs.Get(ctx, "cg-a1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cs, _, _ := unstructured.NestedSlice(cur.Object, "spec", "template", "spec", "containers")
		env, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
		env[0].(map[string]any)["value"] = "updated by client-go"
		_ = unstructured.SetNestedSlice(cs[0].(map[string]any), env, "env")
		_ = unstructured.SetNestedSlice(cur.Object, cs, "spec", "template", "spec", "containers")
		_, err = svcs.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.eventuallyBody("cg-a1.default.example.com", "updated by client-go", 60*time.Second)

	// A watch from a resourceVersion sees what came after it; after etcd
	// compacts past it, the watch answers 410 Expired and a relist plus a
	// watch from the list's version carries on, as client-go's reflector does.
	l, err = svcs.List(ctx, metav1.ListOptions{LabelSelector: "team=b"})
	if err != nil {
		t.Fatal(err)
	}
	from := l.GetResourceVersion()
	if _, err := svcs.Patch(ctx, "cg-b1", types.MergePatchType, []byte(`{"metadata":{"annotations":{"step":"1"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := svcs.Watch(ctx, metav1.ListOptions{ResourceVersion: from, LabelSelector: "team=b"})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, w)
	if ev.Type != watch.Modified || ev.Object.(*unstructured.Unstructured).GetName() != "cg-b1" {
		t.Fatalf("watch from %s: %v %v", from, ev.Type, ev.Object)
	}
	w.Stop()
	st := c.etcdStore()
	resp, err := st.Client().Get(ctx, "compact-point")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	w, err = svcs.Watch(ctx, metav1.ListOptions{ResourceVersion: from})
	if err == nil {
		ev := nextEvent(t, w)
		w.Stop()
		if ev.Type != watch.Error || !apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) && !apierrors.IsGone(apierrors.FromObject(ev.Object)) {
			t.Fatalf("watch from a compacted version: %v %v", ev.Type, ev.Object)
		}
	} else if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from a compacted version: %v", err)
	}
	l, err = svcs.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err = svcs.Watch(ctx, metav1.ListOptions{ResourceVersion: l.GetResourceVersion(), AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Patch(ctx, "cg-b2", types.MergePatchType, []byte(`{"metadata":{"annotations":{"step":"2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := nextEvent(t, w)
		if ev.Type == watch.Bookmark {
			continue
		}
		if ev.Type != watch.Modified || ev.Object.(*unstructured.Unstructured).GetName() != "cg-b2" {
			t.Fatalf("watch after relist: %v %v", ev.Type, ev.Object)
		}
		break
	}
	w.Stop()

	// Knative's own typed clientset.
	kcs, err := servingclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	typed := &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cg-typed", Labels: map[string]string{"team": "c"}},
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
				Image: c.image, Env: []corev1.EnvVar{{Name: "RESPONSE", Value: "typed"}}}}}}}}}}
	if _, err := kcs.ServingV1().Services("default").Create(ctx, typed, metav1.CreateOptions{}); err != nil {
		t.Fatalf("typed create: %v", err)
	}
	c.eventuallyBody("cg-typed.default.example.com", "typed", 60*time.Second)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := kcs.ServingV1().Services("default").Get(ctx, "cg-typed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].Env[0].Value = "typed again"
		_, err = kcs.ServingV1().Services("default").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatalf("typed update: %v", err)
	}
	c.eventuallyBody("cg-typed.default.example.com", "typed again", 60*time.Second)
	if l, err := kcs.ServingV1().Services("default").List(ctx, metav1.ListOptions{LabelSelector: "team=c"}); err != nil || len(l.Items) != 1 {
		t.Fatalf("typed list team=c: %v %v", l, err)
	}
	revs, err := kcs.ServingV1().Revisions("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.knative.dev/service=cg-typed"})
	if err != nil || len(revs.Items) != 2 {
		t.Fatalf("typed revisions of cg-typed: %v %v", revs, err)
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		rev, err := kcs.ServingV1().Revisions("default").Get(ctx, "cg-typed-00002", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cs := rev.Status.ContainerStatuses; len(cs) != 1 || !strings.HasPrefix(cs[0].ImageDigest, c.registry+"/samples/hello@sha256:") {
			return fmt.Errorf("imageDigest of cg-typed-00002: %+v", rev.Status.ContainerStatuses)
		}
		if !rev.IsReady() {
			return fmt.Errorf("cg-typed-00002 not ready: %+v", rev.Status.Conditions)
		}
		return nil
	})
	rt, err := kcs.ServingV1().Routes("default").Get(ctx, "cg-typed", metav1.GetOptions{})
	if err != nil || rt.Status.URL == nil || rt.Status.URL.String() != "http://cg-typed.default.example.com" {
		t.Fatalf("typed route: %v %v", rt, err)
	}

	// Core kinds through the typed clientset, in protobuf.
	pcfg := *cfg
	pcfg.ContentType = runtime.ContentTypeProtobuf
	pcfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cs, err := kubernetes.NewForConfig(&pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cg-team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		_, err := cs.CoreV1().ServiceAccounts("cg-team").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	certFile, keyFile, _ := selfSignedFiles(t, t.TempDir(), "cg.example.org")
	crt, _ := os.ReadFile(certFile)
	key, _ := os.ReadFile(keyFile)
	sec, err := cs.CoreV1().Secrets("cg-team").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cg-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	if len(sec.Data[corev1.TLSPrivateKeyKey]) != 0 {
		t.Fatal("the API returned the private key")
	}
	if _, err := cs.CoreV1().Secrets("cg-team").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt}}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("TLS secret without a key: %v", err)
	}
	cm, err := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data["stable-window"] = "80s"
	if _, err := cs.CoreV1().ConfigMaps("knative-serving").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update config-autoscaler: %v", err)
	}
	if out := c.mustRun("config", "get", "autoscaler"); !hasRow(out, "stable-window", "80s", "set") {
		t.Fatalf("config after client-go update:\n%s", out)
	}
	cm.Data["stable-window"] = "-1s"
	if _, err := cs.CoreV1().ConfigMaps("knative-serving").Update(ctx, cm, metav1.UpdateOptions{}); err == nil {
		t.Fatal("an invalid config was accepted")
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "cg-team", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		if _, err := cs.CoreV1().Secrets("cg-team").Get(ctx, "cg-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("secret of a deleted namespace: %v", err)
		}
		return nil
	})
}

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event in 30s")
	}
	return watch.Event{}
}
