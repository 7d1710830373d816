package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// The read-only core/v1 views of records other roles own: Services are the
// controller's records under services/ (one per Route) plus the edge's,
// Pods are derived on read from instances/, placements/ and the registry's
// Revisions. Writes answer 405.

var (
	servicesGR = schema.GroupResource{Resource: "services"}
	podsGR     = schema.GroupResource{Resource: "pods"}
)

// GatewayServiceName is the core/v1 Service in knative-serving that
// describes the edge, as Knative's ingress gateways have one (tests find
// it through GATEWAY_OVERRIDE).
const GatewayServiceName = "kiln-gateway"

// GatewayEndpoint is the edge as the gateway Service shows it.
type GatewayEndpoint struct {
	// Host is the edge's address: an IP, or a host name. Required.
	Host string
	// HTTPPort is the edge's HTTP port, the node port of port 80. Required.
	HTTPPort int32
	// HTTPSPort is the edge's HTTPS port, the node port of port 443.
	// Optional: 0 shows no https port.
	HTTPSPort int32
}

// ParseGatewayEndpoint parses "http=HOST:PORT[,https=HOST:PORT]" (the
// apiserver's --gateway-endpoint). Both must name the same host.
func ParseGatewayEndpoint(s string) (*GatewayEndpoint, error) {
	ep := &GatewayEndpoint{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || (k != "http" && k != "https") {
			return nil, fmt.Errorf("gateway endpoint %q: want http=HOST:PORT[,https=HOST:PORT]: %w", s, errdefs.ErrInvalidArgument)
		}
		host, p, err := net.SplitHostPort(v)
		port, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || host == "" || port == 0 {
			return nil, fmt.Errorf("gateway endpoint %s=%q: want HOST:PORT: %w", k, v, errdefs.ErrInvalidArgument)
		}
		if ep.Host != "" && ep.Host != host {
			return nil, fmt.Errorf("gateway endpoint %q: http and https name different hosts: %w", s, errdefs.ErrInvalidArgument)
		}
		ep.Host = host
		if k == "http" {
			ep.HTTPPort = int32(port)
		} else {
			ep.HTTPSPort = int32(port)
		}
	}
	if ep.HTTPPort == 0 {
		return nil, fmt.Errorf("gateway endpoint %q: http=HOST:PORT is required: %w", s, errdefs.ErrInvalidArgument)
	}
	return ep, nil
}

// gatewayService is the LoadBalancer Service of the edge: port 80 (http2)
// and 443 (https) with the edge's ports as node ports, as knative.dev/pkg's
// test ingress reads them with --ingressendpoint.
func gatewayService(ep *GatewayEndpoint) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: GatewayServiceName, Namespace: servingNamespace,
			Labels: map[string]string{"app.kubernetes.io/name": GatewayServiceName, "app.kubernetes.io/component": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{
			Name: "http2", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(ep.HTTPPort), NodePort: ep.HTTPPort,
		}}},
	}
	if ep.HTTPSPort != 0 {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(ep.HTTPSPort), NodePort: ep.HTTPSPort})
	}
	ing := corev1.LoadBalancerIngress{Hostname: ep.Host}
	if ip := net.ParseIP(ep.Host); ip != nil {
		ing = corev1.LoadBalancerIngress{IP: ip.String()}
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{ing}
	return svc
}

// Knative's label and annotation keys the views use.
const (
	labelService      = "serving.knative.dev/service"
	labelRoute        = "serving.knative.dev/route"
	labelRevision     = "serving.knative.dev/revision"
	labelRevisionUID  = "serving.knative.dev/revisionUID"
	labelRoutingState = "serving.knative.dev/routingState"
	labelApp          = "app"
	annDefaultCtr     = "kubectl.kubernetes.io/default-container"
	queueProxyName    = "queue-proxy"
	userContainerName = "user-container"
)

// derivedUID is a stable UID for an object derived from another: the
// same every read, different from its source's.
func derivedUID(kind, from string) string {
	if from == "" {
		return ""
	}
	return kind + "-" + from
}

func serviceItem(svc *corev1.Service) watchItem {
	return coreItem(svc, &svc.ObjectMeta, fields.Set{})
}

// serviceSource lists and watches the Services of ns: the one the
// controller keeps for each Route (services/), and the gateway's in
// knative-serving when the edge is known.
func serviceSource(st store.Store, gw *GatewayEndpoint) storeSource {
	return storeSource{st: st,
		prefix: func(ns string) (string, bool) { return store.ServiceListPrefix(ns), true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			svc := &corev1.Service{}
			if err := json.Unmarshal(kv.Value, svc); err != nil {
				return watchItem{}, false, fmt.Errorf("decode service %s: %w", kv.Key, err)
			}
			svc.APIVersion, svc.Kind = "v1", "Service"
			svc.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
			return serviceItem(svc), true, nil
		},
		implicit: func(ns string, recorded map[string]bool) []watchItem {
			if gw == nil || (ns != "" && ns != servingNamespace) || recorded[servingNamespace+"/"+GatewayServiceName] {
				return nil
			}
			return []watchItem{serviceItem(gatewayService(gw))}
		},
	}
}

// podSource lists and watches the Pods of ns (only the one called name
// when name is set): one per instance record, described with its
// placement and revision when they are still there. Those two reads are
// made only for the instances shown.
func podSource(st store.Store, ns, name string) storeSource {
	return storeSource{st: st,
		prefix: func(string) (string, bool) { return store.InstancePrefix, true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			var in cluster.Instance
			if err := json.Unmarshal(kv.Value, &in); err != nil {
				return watchItem{}, false, fmt.Errorf("decode instance %s: %w", kv.Key, err)
			}
			if (ns != "" && in.Namespace != ns) || (name != "" && podName(&in) != name) {
				return watchItem{}, false, nil
			}
			pod := instancePod(context.Background(), st, &in, kv.ModRevision)
			return coreItem(pod, &pod.ObjectMeta, fields.Set{"spec.nodeName": pod.Spec.NodeName, "status.phase": string(pod.Status.Phase)}), true, nil
		},
	}
}

// podName is Knative's name for an instance's pod: its revision's
// Deployment name (<revision>-deployment) and the instance's suffix.
func podName(in *cluster.Instance) string {
	suffix := in.Instance
	if i := strings.LastIndexByte(suffix, '-'); i >= 0 {
		suffix = suffix[i+1:]
	}
	return in.Revision + "-deployment-" + suffix
}

// instancePod reads the instance's placement and revision (either may be
// gone while it stops) and describes it as Knative's pod.
func instancePod(ctx context.Context, st store.Store, in *cluster.Instance, rv int64) *corev1.Pod {
	var pl *cluster.Placement
	if kv, err := st.Get(ctx, store.PlacementKey(in.Node, in.Instance)); err == nil {
		p := &cluster.Placement{}
		if json.Unmarshal(kv.Value, p) == nil {
			pl = p
		}
	}
	var rev *v1.Revision
	if kv, err := st.Get(ctx, store.RegistryKey(servingGroup, "revisions", in.Namespace, in.Revision)); err == nil {
		r := &v1.Revision{}
		if json.Unmarshal(kv.Value, r) == nil {
			rev = r
		}
	}
	return buildPod(in, pl, rev, rv)
}

// buildPod describes an instance as the pod Knative's revision reconciler
// would run: the revision's labels (without route and routingState) plus
// revision, revisionUID and app, its containers plus queue-proxy, and
// status from the instance record.
func buildPod(in *cluster.Instance, pl *cluster.Placement, rev *v1.Revision, rv int64) *corev1.Pod {
	serving := userContainerName
	if pl != nil && pl.Spec.ContainerName != "" {
		serving = pl.Spec.ContainerName
	}
	lbls := map[string]string{}
	anns := map[string]string{}
	var uid string
	if rev != nil {
		for k, v := range rev.Metadata.Labels {
			if k != labelRoute && k != labelRoutingState {
				lbls[k] = v
			}
		}
		for k, v := range rev.Metadata.Annotations {
			switch k {
			case "serving.knative.dev/lastPinned", "serving.knative.dev/no-gc", "serving.knative.dev/routingStateModified", "serving.knative.dev/routes":
			default:
				anns[k] = v
			}
		}
		uid = rev.Metadata.UID
		lbls[labelRevisionUID] = uid
	} else if pl != nil && pl.Spec.Service != "" {
		lbls[labelService] = pl.Spec.Service
	}
	lbls[labelRevision] = in.Revision
	if _, ok := lbls[labelApp]; !ok {
		lbls[labelApp] = in.Revision
	}
	anns[annDefaultCtr] = serving
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: podName(in), Namespace: in.Namespace, Labels: lbls, Annotations: anns,
			UID: types.UID(derivedUID("pod", in.Instance)), ResourceVersion: strconv.FormatInt(rv, 10)},
		Spec: corev1.PodSpec{NodeName: in.Node},
	}
	if pl != nil {
		pod.CreationTimestamp = metav1.NewTime(pl.PlacedAt)
	}
	// Containers: the serving one, its sidecars, then the queue-proxy the
	// agent hosts for it (it runs in the agent, so it has no image).
	specs := []cluster.ContainerSpec{{Name: serving, Image: imageOf(in, pl)}}
	if pl != nil {
		specs = append(specs, pl.Spec.Sidecars...)
		for _, c := range pl.Spec.InitContainers {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
		}
	}
	running := in.Phase == cluster.PhaseRunning || in.Phase == cluster.PhaseStopping
	for i, c := range specs {
		ctr := corev1.Container{Name: c.Name, Image: c.Image}
		if i == 0 && pl != nil {
			ctr.Ports = []corev1.ContainerPort{{Name: "user-port", ContainerPort: pl.Spec.Port, Protocol: corev1.ProtocolTCP}}
		}
		pod.Spec.Containers = append(pod.Spec.Containers, ctr)
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: in.Ready, Started: &running, ImageID: in.ContainerDigests[c.Name]}
		if i == 0 {
			cs.RestartCount = in.RestartCount
			if cs.ImageID == "" {
				cs.ImageID = in.ImageDigest
			}
		}
		cs.State = containerState(in)
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, cs)
	}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: queueProxyName,
		Ports: []corev1.ContainerPort{{Name: "http-queueadm", ContainerPort: 8022, Protocol: corev1.ProtocolTCP}}})
	pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: queueProxyName,
		Ready: in.Ready, Started: &running, State: containerState(in)})

	pod.Status.Phase = corev1.PodPending
	switch in.Phase {
	case cluster.PhaseRunning, cluster.PhaseStopping:
		pod.Status.Phase = corev1.PodRunning
	case cluster.PhaseFailed:
		pod.Status.Phase = corev1.PodFailed
	}
	if in.Phase == cluster.PhaseStopping {
		t := metav1.NewTime(in.UpdatedAt)
		pod.DeletionTimestamp = &t
	}
	pod.Status.Reason, pod.Status.Message = in.Reason, in.Message
	pod.Status.PodIP = in.ContainerIP
	if pod.Status.PodIP == "" {
		if h, _, err := net.SplitHostPort(in.Endpoint); err == nil {
			pod.Status.PodIP = h
		}
	}
	if pod.Status.PodIP != "" {
		pod.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	if !pod.CreationTimestamp.IsZero() {
		st := pod.CreationTimestamp
		pod.Status.StartTime = &st
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(in.UpdatedAt)}
	}
	pod.Status.Conditions = []corev1.PodCondition{
		cond(corev1.PodInitialized, running), cond(corev1.PodReady, in.Ready),
		cond(corev1.ContainersReady, in.Ready), cond(corev1.PodScheduled, true),
	}
	return pod
}

func imageOf(in *cluster.Instance, pl *cluster.Placement) string {
	if pl != nil {
		return pl.Spec.Image
	}
	return in.ImageDigest
}

// containerState is a container's state as the instance record tells it.
func containerState(in *cluster.Instance) corev1.ContainerState {
	switch in.Phase {
	case cluster.PhaseRunning, cluster.PhaseStopping:
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(in.UpdatedAt)}}
	case cluster.PhaseFailed:
		if in.ExitCode != nil {
			return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: *in.ExitCode,
				Reason: in.Reason, Message: in.TerminationMessage}}
		}
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: in.Reason, Message: in.Message}}
	default:
		reason := "ContainerCreating"
		if in.Phase == cluster.PhasePulling {
			reason = "PodInitializing"
		}
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
}

// viewHandlers serve a read-only derived core kind.
type viewHandlers struct {
	s  *server
	gr schema.GroupResource
	// source is the objects of ns; with name set it may hold only that one.
	source func(ns, name string) storeSource
	fields []string // field selectors besides metadata.name and metadata.namespace
	toList func(rv string, objs []any) runtime.Object
}

func (v *viewHandlers) register(mux *http.ServeMux) {
	base := CorePath + "/namespaces/{ns}/" + v.gr.Resource
	mux.Handle("GET "+CorePath+"/"+v.gr.Resource, v.s.auth(v.list))
	mux.Handle("GET "+base, v.s.auth(v.list))
	mux.Handle("GET "+base+"/{name}", v.s.auth(v.get))
	refuse := v.s.auth(v.refuse)
	for _, m := range []string{"POST " + base, "DELETE " + base, "PUT " + base + "/{name}", "PATCH " + base + "/{name}", "DELETE " + base + "/{name}"} {
		mux.Handle(m, refuse)
	}
}

// refuse answers every write 405: the objects are views of records other
// roles own.
func (v *viewHandlers) refuse(w http.ResponseWriter, r *http.Request) {
	verb := requestAttributes(r).Verb
	v.s.coreFail(w, r, apierrors.NewMethodNotSupported(v.gr, verb), v.gr, r.PathValue("name"))
}

func (v *viewHandlers) list(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if isWatch(r) {
		v.s.serveCoreWatch(w, r, v.gr.Resource, v.source(ns, ""), v.fields...)
		return
	}
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, append([]string{fieldName, fieldNamespace}, v.fields...)...)
	}
	if err != nil {
		v.s.coreFail(w, r, err, v.gr, "")
		return
	}
	items, rev, err := v.source(ns, "").snapshot(r.Context(), ns, 0)
	if err != nil {
		v.s.coreFail(w, r, err, v.gr, "")
		return
	}
	var objs []any
	for _, it := range items {
		if ls.Matches(labels.Set(it.labels)) && fs.Matches(it.fields) {
			objs = append(objs, it.obj)
		}
	}
	writeCore(w, r, http.StatusOK, v.toList(strconv.FormatInt(rev, 10), objs))
}

func (v *viewHandlers) get(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if isWatch(r) {
		v.s.serveCoreWatch(w, r, v.gr.Resource, v.source(ns, ""), v.fields...)
		return
	}
	it, err := v.find(r.Context(), ns, name)
	if err != nil {
		v.s.coreFail(w, r, err, v.gr, name)
		return
	}
	writeCore(w, r, http.StatusOK, it.obj.(runtime.Object))
}

// find is ns/name's item. Errors: a Kubernetes NotFound.
func (v *viewHandlers) find(ctx context.Context, ns, name string) (watchItem, error) {
	items, _, err := v.source(ns, name).snapshot(ctx, ns, 0)
	if err != nil {
		return watchItem{}, err
	}
	i := sort.Search(len(items), func(i int) bool { return items[i].key >= ns+"/"+name })
	if i < len(items) && items[i].key == ns+"/"+name {
		return items[i], nil
	}
	return watchItem{}, apierrors.NewNotFound(v.gr, name)
}

// registerViews serves services and pods (with pods/NAME/log).
func (s *server) registerViews(mux *http.ServeMux) {
	svcs := &viewHandlers{s: s, gr: servicesGR,
		source: func(string, string) storeSource { return serviceSource(s.st, s.opts.Gateway) },
		toList: func(rv string, objs []any) runtime.Object {
			l := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []corev1.Service{}}
			for _, o := range objs {
				l.Items = append(l.Items, *o.(*corev1.Service))
			}
			return l
		}}
	svcs.register(mux)
	pods := &viewHandlers{s: s, gr: podsGR, fields: []string{"spec.nodeName", "status.phase"},
		source: func(ns, name string) storeSource { return podSource(s.st, ns, name) },
		toList: func(rv string, objs []any) runtime.Object {
			l := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []corev1.Pod{}}
			for _, o := range objs {
				l.Items = append(l.Items, *o.(*corev1.Pod))
			}
			return l
		}}
	pods.register(mux)
	logs := &podLogs{s: s, pods: pods}
	mux.Handle("GET "+CorePath+"/namespaces/{ns}/pods/{name}/log", s.auth(logs.serve))
}

// podLogs proxies `kubectl logs` to the agent of the pod's node.
type podLogs struct {
	s    *server
	pods *viewHandlers
}

func (p *podLogs) serve(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	fail := func(err error) { p.s.coreFail(w, r, err, podsGR, name) }
	q := r.URL.Query()
	for _, unsupported := range []string{"previous", "timestamps"} {
		if b, _ := strconv.ParseBool(q.Get(unsupported)); b {
			fail(apierrors.NewBadRequest(fmt.Sprintf("%s=true is not supported: kiln keeps only the current container's log", unsupported)))
			return
		}
	}
	for _, unsupported := range []string{"sinceSeconds", "sinceTime"} {
		if q.Get(unsupported) != "" {
			fail(apierrors.NewBadRequest(fmt.Sprintf("%s is not supported: use tailLines", unsupported)))
			return
		}
	}
	upstream := url.Values{}
	for _, k := range []string{"tailLines", "limitBytes"} {
		if v := q.Get(k); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
				fail(apierrors.NewBadRequest(fmt.Sprintf("%s %q: must be a non-negative integer", k, v)))
				return
			}
			upstream.Set(k, v)
		}
	}
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(apierrors.NewBadRequest(fmt.Sprintf("follow %q: must be true or false", v)))
			return
		}
		upstream.Set("follow", strconv.FormatBool(b))
	}
	it, err := p.pods.find(r.Context(), ns, name)
	if err != nil {
		fail(err)
		return
	}
	pod := it.obj.(*corev1.Pod)
	ctr := q.Get("container")
	serving := pod.Annotations[annDefaultCtr]
	if ctr == "" {
		ctr = serving
	}
	found := false
	for _, c := range pod.Spec.Containers {
		found = found || c.Name == ctr
	}
	if !found {
		names := make([]string, 0, len(pod.Spec.Containers))
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		fail(apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s; choose one of: %v", ctr, name, names)))
		return
	}
	if ctr == queueProxyName {
		fail(apierrors.NewBadRequest(fmt.Sprintf("container %s of pod %s runs inside the node agent: read the agent's log on node %s", ctr, name, pod.Spec.NodeName)))
		return
	}
	inst, err := p.instance(r.Context(), pod)
	if err != nil {
		fail(err)
		return
	}
	addr, err := p.nodeAPI(r.Context(), inst.Node)
	if err != nil {
		fail(err)
		return
	}
	path := "/logs/" + url.PathEscape(inst.Instance)
	if ctr != serving {
		path += "/" + url.PathEscape(ctr)
	}
	scheme := "http"
	if p.s.opts.NodeTLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: path, RawQuery: upstream.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		fail(err)
		return
	}
	resp, err := p.s.nodeClient.Do(req)
	if err != nil {
		fail(apierrors.NewServiceUnavailable(fmt.Sprintf("read the log of pod %s from node %s: %v", name, inst.Node, err)))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		text := strings.TrimSpace(string(msg))
		if resp.StatusCode == http.StatusNotFound {
			fail(apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q has no log yet: %s", ctr, name, text)))
			return
		}
		fail(apierrors.NewInternalError(fmt.Errorf("node %s answered %d: %s", inst.Node, resp.StatusCode, text)))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// instance is the instance record the pod shows.
func (p *podLogs) instance(ctx context.Context, pod *corev1.Pod) (*cluster.Instance, error) {
	kvs, _, err := p.s.st.List(ctx, store.InstancePrefix+pod.Spec.NodeName+"/")
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		var in cluster.Instance
		if json.Unmarshal(kv.Value, &in) == nil && in.Namespace == pod.Namespace && podName(&in) == pod.Name {
			return &in, nil
		}
	}
	return nil, apierrors.NewNotFound(podsGR, pod.Name)
}

// nodeAPI is the address of node's API, from its record.
func (p *podLogs) nodeAPI(ctx context.Context, node string) (string, error) {
	kv, err := p.s.st.Get(ctx, store.NodeKey(node))
	if err != nil {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s is not registered: %v", node, err))
	}
	var n cluster.Node
	if err := json.Unmarshal(kv.Value, &n); err != nil {
		return "", fmt.Errorf("decode node %s: %w", node, err)
	}
	if n.APIAddress == "" {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s serves no API for logs (its agent runs without --node-api-listen)", node))
	}
	return n.APIAddress, nil
}

// serviceColumns are kubectl's columns of a Service.
var serviceColumns = []printerColumn{
	{Name: "Type", Type: "string", JSONPath: ".spec.type", Description: "type determines how the Service is exposed."},
	{Name: "Cluster-IP", Type: "string", JSONPath: ".spec.clusterIP", Description: "clusterIP is the IP address of the service.",
		Value: func(obj map[string]any) any { return orNone(lookupString(obj, "spec", "clusterIP")) }},
	{Name: "External-IP", Type: "string", JSONPath: ".status.loadBalancer.ingress", Description: "List of IP addresses at which this service is available.",
		Value: serviceExternalCell},
	{Name: "Port(s)", Type: "string", JSONPath: ".spec.ports", Description: "The list of ports that are exposed by this service.",
		Value: servicePortsCell},
	ageColumn,
	{Name: "Selector", Type: "string", JSONPath: ".spec.selector", Priority: 1, Description: "Route service traffic to pods with label keys and values matching this selector.",
		Value: func(obj map[string]any) any {
			sel, _ := lookup(obj, "spec", "selector").(map[string]any)
			return orNone(joinedPairs(sel))
		}},
}

// podColumns are kubectl's columns of a Pod.
var podColumns = []printerColumn{
	{Name: "Ready", Type: "string", JSONPath: ".status.containerStatuses", Description: "The aggregate readiness state of this pod for accepting traffic.",
		Value: func(obj map[string]any) any {
			sts, _ := lookup(obj, "status", "containerStatuses").([]any)
			ctrs, _ := lookup(obj, "spec", "containers").([]any)
			ready := 0
			for _, s := range sts {
				if m, _ := s.(map[string]any); m != nil && m["ready"] == true {
					ready++
				}
			}
			return fmt.Sprintf("%d/%d", ready, len(ctrs))
		}},
	{Name: "Status", Type: "string", JSONPath: ".status.phase", Description: "The aggregate status of the containers in this pod.", Value: podStatusCell},
	{Name: "Restarts", Type: "string", JSONPath: ".status.containerStatuses", Description: "The number of times the containers in this pod have been restarted.",
		Value: func(obj map[string]any) any {
			sts, _ := lookup(obj, "status", "containerStatuses").([]any)
			n := int64(0)
			for _, s := range sts {
				if m, _ := s.(map[string]any); m != nil {
					n += numberOf(m["restartCount"])
				}
			}
			return strconv.FormatInt(n, 10)
		}},
	ageColumn,
	{Name: "IP", Type: "string", JSONPath: ".status.podIP", Priority: 1, Description: "IP address allocated to the pod.",
		Value: func(obj map[string]any) any { return orNone(lookupString(obj, "status", "podIP")) }},
	{Name: "Node", Type: "string", JSONPath: ".spec.nodeName", Priority: 1, Description: "Name of the Node this pod is assigned to.",
		Value: func(obj map[string]any) any { return orNone(lookupString(obj, "spec", "nodeName")) }},
}

// podStatusCell is kubectl's STATUS of a pod: Terminating while it stops,
// else a waiting or terminated container's reason, else its phase.
func podStatusCell(obj map[string]any) any {
	if lookupString(obj, "metadata", "deletionTimestamp") != "" {
		return "Terminating"
	}
	sts, _ := lookup(obj, "status", "containerStatuses").([]any)
	for _, s := range sts {
		m, _ := s.(map[string]any)
		for _, st := range []string{"waiting", "terminated"} {
			if r := lookupString(m, "state", st, "reason"); r != "" {
				return r
			}
		}
	}
	if r := lookupString(obj, "status", "reason"); r != "" && lookupString(obj, "status", "phase") == string(corev1.PodFailed) {
		return r
	}
	return lookupString(obj, "status", "phase")
}

func serviceExternalCell(obj map[string]any) any {
	switch lookupString(obj, "spec", "type") {
	case string(corev1.ServiceTypeExternalName):
		return lookupString(obj, "spec", "externalName")
	case string(corev1.ServiceTypeLoadBalancer):
		ings, _ := lookup(obj, "status", "loadBalancer", "ingress").([]any)
		var out []string
		for _, i := range ings {
			m, _ := i.(map[string]any)
			if ip, _ := m["ip"].(string); ip != "" {
				out = append(out, ip)
			} else if h, _ := m["hostname"].(string); h != "" {
				out = append(out, h)
			}
		}
		if len(out) == 0 {
			return "<pending>"
		}
		return strings.Join(out, ",")
	}
	return "<none>"
}

func servicePortsCell(obj map[string]any) any {
	ports, _ := lookup(obj, "spec", "ports").([]any)
	var out []string
	for _, p := range ports {
		m, _ := p.(map[string]any)
		port := numberOf(m["port"])
		proto, _ := m["protocol"].(string)
		if proto == "" {
			proto = "TCP"
		}
		s := strconv.FormatInt(port, 10)
		if np := numberOf(m["nodePort"]); np != 0 {
			s += ":" + strconv.FormatInt(np, 10)
		}
		out = append(out, s+"/"+proto)
	}
	return orNone(strings.Join(out, ","))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func joinedPairs(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(out, ",")
}

// numberOf is a JSON number as an int64 (0 when it is none).
func numberOf(v any) int64 {
	if n, ok := jsonCell("integer", v).(int64); ok {
		return n
	}
	return 0
}

// lookup walks nested maps.
func lookup(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
