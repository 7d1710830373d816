package resources

import (
	"net/url"

	corev1 "k8s.io/api/core/v1"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// MakeK8sService returns the core/v1 Service Knative's route reconciler
// keeps for a Route (its placeholder Service): named as the Route,
// ExternalName to the Route's cluster-local host, with the Route's labels
// but the visibility label, plus serving.knative.dev/route, the Route's
// annotations, and the Route as controller. uid, resourceVersion and
// creationTimestamp are the writer's to set.
func MakeK8sService(rt *v1.Route) *corev1.Service {
	m := rt.Metadata
	lbls := map[string]string{}
	for k, v := range m.Labels {
		if k != v1.VisibilityLabelKey {
			lbls[k] = v
		}
	}
	lbls[v1.RouteLabelKey] = m.Name
	host := m.Name + "." + m.Namespace + ".svc.cluster.local"
	if rt.Status.Address != nil {
		if u, err := url.Parse(rt.Status.Address.URL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
	}
	h2c := "kubernetes.io/h2c"
	return &corev1.Service{
		TypeMeta: k8smeta.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: k8smeta.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: lbls, Annotations: copyMap(m.Annotations),
			OwnerReferences: []k8smeta.OwnerReference{{APIVersion: v1.APIVersion, Kind: v1.KindRoute, Name: m.Name,
				UID: types.UID(m.UID), Controller: boolPtr(true), BlockOwnerDeletion: boolPtr(true)}}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: host, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{Name: "http2", AppProtocol: &h2c, Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)}}},
	}
}
