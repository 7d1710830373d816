package v1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// Route maps a host name to a weighted set of Revisions.
type Route struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            RouteSpec         `json:"spec"`
	Status          RouteStatus       `json:"status,omitempty"`
}

// RouteSpec is the desired traffic split.
type RouteSpec struct {
	Traffic []TrafficTarget `json:"traffic,omitempty"`
}

// TrafficTarget is one entry of a traffic split. Exactly one of
// RevisionName or ConfigurationName is set in a Route; in a Service neither
// names a configuration (it is implied) and LatestRevision chooses.
type TrafficTarget struct {
	Tag               string `json:"tag,omitempty"`
	RevisionName      string `json:"revisionName,omitempty"`
	ConfigurationName string `json:"configurationName,omitempty"`
	LatestRevision    *bool  `json:"latestRevision,omitempty"`
	Percent           *int64 `json:"percent,omitempty"`
	URL               string `json:"url,omitempty"`
}

// RouteStatusFields are shared with Service status.
type RouteStatusFields struct {
	URL     string              `json:"url,omitempty"`
	Address *metav1.Addressable `json:"address,omitempty"`
	Traffic []TrafficTarget     `json:"traffic,omitempty"`
}

// RouteStatus is the observed state of a Route.
type RouteStatus struct {
	metav1.Status     `json:",inline"`
	RouteStatusFields `json:",inline"`
}

// Route condition types.
const (
	RouteConditionReady              = "Ready"
	RouteConditionAllTrafficAssigned = "AllTrafficAssigned"
	RouteConditionIngressReady       = "IngressReady"
)
