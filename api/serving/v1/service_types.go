package v1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// Service manages a Configuration and a Route with the same name.
type Service struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ServiceSpec       `json:"spec"`
	Status          ServiceStatus     `json:"status,omitempty"`
}

// ServiceSpec is a ConfigurationSpec and a RouteSpec side by side.
type ServiceSpec struct {
	ConfigurationSpec `json:",inline"`
	RouteSpec         `json:",inline"`
}

// ServiceStatus merges the Configuration and Route status fields.
type ServiceStatus struct {
	metav1.Status             `json:",inline"`
	ConfigurationStatusFields `json:",inline"`
	RouteStatusFields         `json:",inline"`
}

// Service condition types.
const (
	ServiceConditionReady               = "Ready"
	ServiceConditionConfigurationsReady = "ConfigurationsReady"
	ServiceConditionRoutesReady         = "RoutesReady"
)
