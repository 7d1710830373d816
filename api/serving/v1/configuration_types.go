package v1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// Configuration stamps a new Revision for every change of its template.
type Configuration struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta   `json:"metadata"`
	Spec            ConfigurationSpec   `json:"spec"`
	Status          ConfigurationStatus `json:"status,omitempty"`
}

// ConfigurationSpec holds the revision template.
type ConfigurationSpec struct {
	Template RevisionTemplateSpec `json:"template"`
}

// ConfigurationStatusFields are shared with Service status.
type ConfigurationStatusFields struct {
	LatestReadyRevisionName   string `json:"latestReadyRevisionName,omitempty"`
	LatestCreatedRevisionName string `json:"latestCreatedRevisionName,omitempty"`
}

// ConfigurationStatus is the observed state of a Configuration.
type ConfigurationStatus struct {
	metav1.Status             `json:",inline"`
	ConfigurationStatusFields `json:",inline"`
}

// Configuration condition types.
const ConfigurationConditionReady = "Ready"
