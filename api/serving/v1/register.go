package v1

// Group, version and kinds served under /apis/serving.knative.dev/v1.
const (
	Group      = "serving.knative.dev"
	Version    = "v1"
	APIVersion = Group + "/" + Version

	KindService       = "Service"
	KindConfiguration = "Configuration"
	KindRevision      = "Revision"
	KindRoute         = "Route"
)

// Resource names (plural, lower case) used in URLs and etcd keys.
const (
	ResourceServices       = "services"
	ResourceConfigurations = "configurations"
	ResourceRevisions      = "revisions"
	ResourceRoutes         = "routes"
)

// Well-known labels and annotations, as Knative names them.
const (
	ServiceLabelKey              = Group + "/service"
	ConfigurationLabelKey        = Group + "/configuration"
	ConfigurationGenerationLabel = Group + "/configurationGeneration"
	RevisionLabelKey             = Group + "/revision"
	RouteLabelKey                = Group + "/route"
	RoutingStateLabelKey         = Group + "/routingState"
	// RoutingStateModifiedAnnotation is when routingState last changed
	// (RFC 3339); revision GC counts inactivity from it.
	RoutingStateModifiedAnnotation = Group + "/routingStateModified"
	// RoutesAnnotation lists, comma-separated and sorted, the Routes whose
	// traffic targets a Revision or Configuration (Knative's route labeler).
	RoutesAnnotation = Group + "/routes"
	// NoGCAnnotation "true" keeps a revision from garbage collection.
	NoGCAnnotation = Group + "/no-gc"
	// Routing states a revision's routingState label takes.
	RoutingStateActive  = "active"
	RoutingStateReserve = "reserve"
	CreatorAnnotation   = Group + "/creator"
	// LastModifierAnnotation names the user whose write last changed spec.
	LastModifierAnnotation = Group + "/lastModifier"
	RoutesAnnotationKey    = Group + "/routes"
	UserImageAnnotation    = "client.knative.dev/user-image"
	VisibilityLabelKey     = "networking.knative.dev/visibility"
	VisibilityClusterLocal = "cluster-local"

	AutoscalingMinScaleAnnotation = "autoscaling.knative.dev/min-scale"
	AutoscalingMaxScaleAnnotation = "autoscaling.knative.dev/max-scale"
	AutoscalingInitialScale       = "autoscaling.knative.dev/initial-scale"
	AutoscalingTargetAnnotation   = "autoscaling.knative.dev/target"
	AutoscalingMetricAnnotation   = "autoscaling.knative.dev/metric"
	AutoscalingClassAnnotation    = "autoscaling.knative.dev/class"
	AutoscalingUtilization        = "autoscaling.knative.dev/target-utilization-percentage"
	AutoscalingWindow             = "autoscaling.knative.dev/window"
	// More of Knative's per-revision autoscaling annotations.
	AutoscalingActivationScale       = "autoscaling.knative.dev/activation-scale"
	AutoscalingPanicWindowPercentage = "autoscaling.knative.dev/panic-window-percentage"
	AutoscalingPanicThreshold        = "autoscaling.knative.dev/panic-threshold-percentage"
	AutoscalingTargetBurstCapacity   = "autoscaling.knative.dev/target-burst-capacity"
	AutoscalingScaleDownDelay        = "autoscaling.knative.dev/scale-down-delay"
	AutoscalingScaleToZeroRetention  = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
)

// Request headers the edge adds for every weighted cluster so the activator
// (and logs) know the target revision.
const (
	RevisionHeaderName  = "Knative-Serving-Revision"
	NamespaceHeaderName = "Knative-Serving-Namespace"
)
