package xds

import (
	"maps"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/structpb"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Labels and annotations reach the edge the way Knative carries them from a
// Service to its Route, to the Route's ingress and finally to the
// platform's route object (OpenShift's routes.route.openshift.io, whose
// serving.knative.openshift.io/ingressName and ingressNamespace labels name
// the ingress). kiln has no ingress object: the Envoy Route entry is the
// edge's route object, so each carries, under filter_metadata, what the
// ingress would have had.
const (
	// RouteMetadataFilter is the filter_metadata key of an Envoy Route's
	// Knative metadata: a struct with labels, annotations, ingressName and
	// ingressNamespace.
	RouteMetadataFilter = "kiln.dev/route"

	// Knative's ingress labels (networking.knative.dev ingress of a Route).
	routeNamespaceLabelKey = servingv1.Group + "/routeNamespace"
	// lastAppliedAnnotation is kubectl's, which Knative never propagates to
	// the ingress.
	lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"
)

// objectMetadata is what one Envoy route entry says about the object it was
// made from.
type objectMetadata struct {
	name, namespace     string
	labels, annotations map[string]string
}

// routeMetadata is a Knative Route's ingress view: its labels plus
// Knative's serving.knative.dev/route and routeNamespace labels, its
// annotations without kubectl's last-applied configuration.
func routeMetadata(r *servingv1.Route) objectMetadata {
	labels := maps.Clone(r.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[servingv1.RouteLabelKey] = r.Metadata.Name
	labels[routeNamespaceLabelKey] = r.Metadata.Namespace
	ann := maps.Clone(r.Metadata.Annotations)
	delete(ann, lastAppliedAnnotation)
	return objectMetadata{name: r.Metadata.Name, namespace: r.Metadata.Namespace, labels: labels, annotations: ann}
}

// envoyMetadata renders m as filter_metadata[RouteMetadataFilter].
func (m objectMetadata) envoyMetadata() *corev3.Metadata {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		"ingressName":      structpb.NewStringValue(m.name),
		"ingressNamespace": structpb.NewStringValue(m.namespace),
		"labels":           structpb.NewStructValue(stringStruct(m.labels)),
		"annotations":      structpb.NewStructValue(stringStruct(m.annotations)),
	}}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{RouteMetadataFilter: s}}
}

func stringStruct(m map[string]string) *structpb.Struct {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.Fields[k] = structpb.NewStringValue(m[k])
	}
	return s
}

// withMetadata stamps m on every route entry of vh.
func withMetadata(vh *routev3.VirtualHost, m objectMetadata) *routev3.VirtualHost {
	for _, r := range vh.Routes {
		r.Metadata = m.envoyMetadata()
	}
	return vh
}
