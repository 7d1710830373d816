package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	k8scorev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kiln-serving/kiln/agent"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

func newViewServer(t *testing.T, opts Options) (*httptest.Server, store.Store, kubernetes.Interface) {
	t.Helper()
	st := memstore.New()
	opts.Token = token
	srv := httptest.NewServer(New(registry.New(st), opts, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, BearerToken: token, ContentConfig: rest.ContentConfig{
		ContentType: mediaProtobuf, AcceptContentTypes: mediaProtobuf + "," + mediaJSON}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st, cs
}

func putJSON(t *testing.T, st store.Store, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), key, b); err != nil {
		t.Fatal(err)
	}
}

func TestParseGatewayEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    GatewayEndpoint
		wantErr string
	}{
		{in: "http=127.0.0.1:8080,https=127.0.0.1:8443", want: GatewayEndpoint{Host: "127.0.0.1", HTTPPort: 8080, HTTPSPort: 8443}},
		{in: "http=edge.example.com:80", want: GatewayEndpoint{Host: "edge.example.com", HTTPPort: 80}},
		{in: "https=127.0.0.1:8443", wantErr: "http=HOST:PORT is required"},
		{in: "http=127.0.0.1", wantErr: `http="127.0.0.1": want HOST:PORT`},
		{in: "http=127.0.0.1:0", wantErr: "want HOST:PORT"},
		{in: "grpc=127.0.0.1:1", wantErr: "want http=HOST:PORT"},
		{in: "http=a:1,https=b:2", wantErr: "different hosts"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseGatewayEndpoint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || *got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// knative.dev/pkg's test ingress maps port 80 to its nodePort when the
// tests run with --ingressendpoint.
func TestGatewayService(t *testing.T) {
	_, _, cs := newViewServer(t, Options{Gateway: &GatewayEndpoint{Host: "127.0.0.1", HTTPPort: 8080, HTTPSPort: 8443}})
	ctx := context.Background()
	svc, err := cs.CoreV1().Services("knative-serving").Get(ctx, "kiln-gateway", k8smeta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePorts := map[int32]int32{}
	for _, p := range svc.Spec.Ports {
		nodePorts[p.Port] = p.NodePort
	}
	if svc.Spec.Type != k8scorev1.ServiceTypeLoadBalancer || nodePorts[80] != 8080 || nodePorts[443] != 8443 ||
		svc.Spec.Ports[0].Name != "http2" || len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != "127.0.0.1" {
		t.Fatalf("gateway service: %+v", svc)
	}
	l, err := cs.CoreV1().Services("knative-serving").List(ctx, k8smeta.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "kiln-gateway" {
		t.Fatalf("list: %+v %v", l, err)
	}

	_, _, bare := newViewServer(t, Options{})
	if _, err := bare.CoreV1().Services("knative-serving").Get(ctx, "kiln-gateway", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("without an edge: %v", err)
	}
}

// seedRouteService stores the Service the controller keeps for Route
// team/hello.
func seedRouteService(t *testing.T, st store.Store) {
	t.Helper()
	putJSON(t, st, store.ServiceKey("team", "hello"), map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "hello", "namespace": "team", "uid": "svc-uid", "creationTimestamp": "2026-01-02T03:04:05Z",
			"labels":      map[string]string{"serving.knative.dev/service": "hello", "serving.knative.dev/route": "hello", "juicy": "yes"},
			"annotations": map[string]string{"serving.knative.dev/creator": "admin", "serving.knative.dev/lastModifier": "admin"},
			"ownerReferences": []map[string]any{{"apiVersion": "serving.knative.dev/v1", "kind": "Route", "name": "hello", "uid": "route-uid",
				"controller": true, "blockOwnerDeletion": true}}},
		"spec": map[string]any{"type": "ExternalName", "externalName": "hello.team.svc.cluster.local", "sessionAffinity": "None",
			"ports": []map[string]any{{"name": "http2", "appProtocol": "kubernetes.io/h2c", "protocol": "TCP", "port": 80, "targetPort": 80}}},
	})
}

// Knative's conformance tests read a Route's Service for the labels and
// annotations the Route propagates: the view serves the controller's
// records as they are stored.
func TestRouteServices(t *testing.T) {
	srv, st, cs := newViewServer(t, Options{})
	seedRouteService(t, st)
	ctx := context.Background()
	svc, err := cs.CoreV1().Services("team").Get(ctx, "hello", k8smeta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Labels["serving.knative.dev/service"] != "hello" || svc.Labels["serving.knative.dev/route"] != "hello" || svc.Labels["juicy"] != "yes" {
		t.Errorf("labels: %v", svc.Labels)
	}
	if svc.Annotations["serving.knative.dev/creator"] != "admin" || svc.Annotations["serving.knative.dev/lastModifier"] != "admin" {
		t.Errorf("annotations: %v", svc.Annotations)
	}
	if svc.Spec.Type != k8scorev1.ServiceTypeExternalName || svc.Spec.ExternalName != "hello.team.svc.cluster.local" {
		t.Errorf("spec: %+v", svc.Spec)
	}
	if len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].Kind != "Route" || svc.OwnerReferences[0].UID != "route-uid" ||
		svc.OwnerReferences[0].Controller == nil || !*svc.OwnerReferences[0].Controller {
		t.Errorf("owner: %+v", svc.OwnerReferences)
	}
	if kv, err := st.Get(ctx, store.ServiceKey("team", "hello")); err != nil || svc.ResourceVersion != strconv.FormatInt(kv.ModRevision, 10) {
		t.Errorf("resourceVersion %q, want the record's mod revision (%v)", svc.ResourceVersion, err)
	}
	if svc.UID != "svc-uid" || svc.CreationTimestamp.IsZero() {
		t.Errorf("meta: %+v", svc.ObjectMeta)
	}
	l, err := cs.CoreV1().Services("team").List(ctx, k8smeta.ListOptions{LabelSelector: "serving.knative.dev/route=hello"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("selected: %+v %v", l, err)
	}
	l, err = cs.CoreV1().Services("team").List(ctx, k8smeta.ListOptions{LabelSelector: "serving.knative.dev/route=other"})
	if err != nil || len(l.Items) != 0 {
		t.Fatalf("not selected: %+v %v", l, err)
	}
	if _, err := cs.CoreV1().Services("other").Get(ctx, "hello", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("other namespace: %v", err)
	}

	// A watch sees the controller's writes.
	w, err := cs.CoreV1().Services("team").Watch(ctx, k8smeta.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := st.Delete(ctx, store.ServiceKey("team", "hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if got, ok := ev.Object.(*k8scorev1.Service); ev.Type != watch.Deleted || !ok || got.Name != "hello" || got.Labels["juicy"] != "yes" {
			t.Fatalf("event %s %+v", ev.Type, ev.Object)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for the deleted service")
	}
	seedRouteService(t, st)

	code, b := send(t, srv, srv.URL, http.MethodGet, CorePath+"/namespaces/team/services", "", "Accept", tableAccept)
	var tab k8smeta.Table
	if err := json.Unmarshal(b, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 {
		t.Fatalf("table: %d %s", code, b)
	}
	var cols []string
	for _, c := range tab.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if got := strings.Join(cols, ","); got != "Name,Type,Cluster-IP,External-IP,Port(s),Age,Selector" {
		t.Errorf("columns %s", got)
	}
	if c := tab.Rows[0].Cells; c[0] != "hello" || c[1] != "ExternalName" || c[2] != "<none>" || c[3] != "hello.team.svc.cluster.local" || c[4] != "80/TCP" {
		t.Errorf("row %v", c)
	}

	// Writes are refused: the controller owns these records.
	code, b = do(t, srv, http.MethodDelete, CorePath+"/namespaces/team/services/hello", "")
	wantK8sStatus(t, code, b, http.StatusMethodNotAllowed, k8smeta.StatusReasonMethodNotAllowed, "")
	code, b = do(t, srv, http.MethodPost, CorePath+"/namespaces/team/services", `{"metadata":{"name":"x"}}`)
	wantK8sStatus(t, code, b, http.StatusMethodNotAllowed, k8smeta.StatusReasonMethodNotAllowed, "")
}

func seedInstance(t *testing.T, st store.Store, in cluster.Instance) {
	t.Helper()
	putJSON(t, st, store.RegistryKey(servingGroup, "revisions", "team", "hello-00001"), map[string]any{
		"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
		"metadata": map[string]any{"name": "hello-00001", "namespace": "team", "uid": "rev-uid",
			"labels": map[string]string{"serving.knative.dev/service": "hello", "serving.knative.dev/configuration": "hello",
				"serving.knative.dev/configurationGeneration": "1", "serving.knative.dev/routingState": "active"},
			"annotations": map[string]string{"serving.knative.dev/routes": "hello", "team/note": "x"}},
		"spec": map[string]any{"containers": []any{map[string]any{"image": "registry/hello:v1"}}},
	})
	putJSON(t, st, store.PlacementKey(in.Node, in.Instance), cluster.Placement{Instance: in.Instance, Node: in.Node,
		PlacedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Spec: cluster.InstanceSpec{Namespace: "team", Service: "hello", Configuration: "hello", Revision: in.Revision, Image: "registry/hello:v1", Port: 8080,
			Sidecars: []cluster.ContainerSpec{{Name: "logger", Image: "registry/logger:v1"}}}})
	putJSON(t, st, store.InstanceKey(in.Node, in.Instance), in)
}

func readyInstance() cluster.Instance {
	return cluster.Instance{Instance: "hello-00001-abcde", Node: "n1", Namespace: "team", Revision: "hello-00001",
		Phase: cluster.PhaseRunning, Ready: true, ContainerIP: "10.88.0.7", RestartCount: 2,
		ImageDigest:      "registry/hello@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
		ContainerDigests: map[string]string{"logger": "registry/logger@sha256:00"}, UpdatedAt: time.Now()}
}

func TestPods(t *testing.T) {
	srv, st, cs := newViewServer(t, Options{})
	seedInstance(t, st, readyInstance())
	ctx := context.Background()
	l, err := cs.CoreV1().Pods("team").List(ctx, k8smeta.ListOptions{LabelSelector: "serving.knative.dev/service=hello"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("list: %+v %v", l, err)
	}
	pod := l.Items[0]
	if pod.Name != "hello-00001-deployment-abcde" || pod.Spec.NodeName != "n1" || pod.Status.Phase != k8scorev1.PodRunning || pod.Status.PodIP != "10.88.0.7" {
		t.Fatalf("pod: %+v", pod)
	}
	for k, v := range map[string]string{"serving.knative.dev/service": "hello", "serving.knative.dev/configuration": "hello",
		"serving.knative.dev/configurationGeneration": "1", "serving.knative.dev/revision": "hello-00001",
		"serving.knative.dev/revisionUID": "rev-uid", "app": "hello-00001"} {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if _, ok := pod.Labels["serving.knative.dev/routingState"]; ok {
		t.Errorf("routingState is not a pod label: %v", pod.Labels)
	}
	if pod.Annotations["kubectl.kubernetes.io/default-container"] != "user-container" || pod.Annotations["team/note"] != "x" || pod.Annotations["serving.knative.dev/routes"] != "" {
		t.Errorf("annotations: %v", pod.Annotations)
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "user-container,logger,queue-proxy" {
		t.Errorf("containers %v", names)
	}
	user := pod.Status.ContainerStatuses[0]
	if user.Name != "user-container" || !user.Ready || user.RestartCount != 2 || user.Image != "registry/hello:v1" ||
		!strings.Contains(user.ImageID, "@sha256:") || user.State.Running == nil || user.Started == nil || !*user.Started {
		t.Errorf("user-container status: %+v", user)
	}
	if pod.Status.ContainerStatuses[1].ImageID != "registry/logger@sha256:00" {
		t.Errorf("sidecar status: %+v", pod.Status.ContainerStatuses[1])
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		ready = ready || (c.Type == k8scorev1.PodReady && c.Status == k8scorev1.ConditionTrue)
	}
	if !ready {
		t.Errorf("conditions %+v", pod.Status.Conditions)
	}
	if _, err := cs.CoreV1().Pods("team").Get(ctx, pod.Name, k8smeta.GetOptions{}); err != nil {
		t.Errorf("get: %v", err)
	}
	if _, err := cs.CoreV1().Pods("team").Get(ctx, "nope", k8smeta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get missing: %v", err)
	}
	for sel, want := range map[string]int{"metadata.name=" + pod.Name: 1, "metadata.name=x": 0, "spec.nodeName=n1": 1} {
		l, err := cs.CoreV1().Pods("team").List(ctx, k8smeta.ListOptions{FieldSelector: sel})
		if err != nil || len(l.Items) != want {
			t.Errorf("field selector %s: %d items, %v", sel, len(l.Items), err)
		}
	}
	if l, err := cs.CoreV1().Pods("other").List(ctx, k8smeta.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("other namespace: %+v %v", l, err)
	}

	code, b := send(t, srv, srv.URL, http.MethodGet, CorePath+"/namespaces/team/pods", "", "Accept", tableAccept)
	var tab k8smeta.Table
	if err := json.Unmarshal(b, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 {
		t.Fatalf("table: %d %s", code, b)
	}
	if c := tab.Rows[0].Cells; c[0] != pod.Name || c[1] != "3/3" || c[2] != "Running" || c[3] != "2" {
		t.Errorf("row %v", c)
	}

	err = cs.CoreV1().Pods("team").Delete(ctx, pod.Name, k8smeta.DeleteOptions{})
	if !apierrors.IsMethodNotSupported(err) {
		t.Errorf("delete: %v", err)
	}

	// A watch sees the instance become not ready.
	w, err := cs.CoreV1().Pods("team").Watch(ctx, k8smeta.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := readyInstance()
	in.Ready = false
	putJSON(t, st, store.InstanceKey(in.Node, in.Instance), in)
	select {
	case ev := <-w.ResultChan():
		p, ok := ev.Object.(*k8scorev1.Pod)
		if ev.Type != "MODIFIED" || !ok || p.Status.ContainerStatuses[0].Ready {
			t.Fatalf("event %s %+v", ev.Type, ev.Object)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event")
	}
}

func TestPodLogs(t *testing.T) {
	stateDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(stateDir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	in := readyInstance()
	if err := os.WriteFile(filepath.Join(stateDir, "logs", in.Instance+".log"), []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "logs", in.Instance+".logger.log"), []byte("sidecar\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := httptest.NewServer(agent.LogsHandler(stateDir))
	t.Cleanup(node.Close)

	srv, st, cs := newViewServer(t, Options{})
	seedInstance(t, st, in)
	ctx := context.Background()
	pod := "hello-00001-deployment-abcde"
	logs := func(opts *k8scorev1.PodLogOptions) (string, error) {
		b, err := cs.CoreV1().Pods("team").GetLogs(pod, opts).DoRaw(ctx)
		return string(b), err
	}
	// No node record yet: the node serves no API.
	if _, err := logs(&k8scorev1.PodLogOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("without a node API: %v", err)
	}
	putJSON(t, st, store.NodeKey("n1"), cluster.Node{Name: "n1", APIAddress: strings.TrimPrefix(node.URL, "http://")})

	two := int64(2)
	for _, tc := range []struct {
		name string
		opts k8scorev1.PodLogOptions
		want string
	}{
		{"default container", k8scorev1.PodLogOptions{}, "one\ntwo\nthree\n"},
		{"named", k8scorev1.PodLogOptions{Container: "user-container"}, "one\ntwo\nthree\n"},
		{"tail", k8scorev1.PodLogOptions{TailLines: &two}, "two\nthree\n"},
		{"limit", k8scorev1.PodLogOptions{LimitBytes: &two}, "on"},
		{"sidecar", k8scorev1.PodLogOptions{Container: "logger"}, "sidecar\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := logs(&tc.opts)
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ query, msg string }{
		{"previous=true", "previous=true is not supported"},
		{"sinceSeconds=10", "sinceSeconds is not supported"},
		{"tailLines=-1", `tailLines "-1": must be a non-negative integer`},
		{"container=queue-proxy", "runs inside the node agent"},
		{"container=nope", "container nope is not valid"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces/team/pods/"+pod+"/log?"+tc.query, "")
			st := wantK8sStatus(t, code, b, http.StatusBadRequest, k8smeta.StatusReasonBadRequest, "")
			if !strings.Contains(st.Message, tc.msg) {
				t.Fatalf("message %q, want %q", st.Message, tc.msg)
			}
		})
	}
	if _, err := cs.CoreV1().Pods("team").GetLogs("nope", &k8scorev1.PodLogOptions{}).DoRaw(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("missing pod: %v", err)
	}
	// Reading logs needs view in the namespace, like reading the pod.
	code, _ := send(t, srv, srv.URL, http.MethodGet, CorePath+"/namespaces/team/pods/"+pod+"/log", "", "Authorization", "Bearer nobody")
	if code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", code)
	}
}
