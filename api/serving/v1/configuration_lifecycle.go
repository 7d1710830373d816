package v1

import (
	"fmt"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// IsReady reports whether the current generation is observed and Ready.
func (c *Configuration) IsReady() bool { return readyFor(&c.Metadata, &c.Status.Status) }

// InitializeConditions sets Ready to Unknown where absent.
func (cs *ConfigurationStatus) InitializeConditions(now time.Time) {
	configurationConditions.initialize(&cs.Status, now)
}

// SetLatestCreatedRevisionName records a newly stamped revision; Ready goes
// Unknown until that revision is ready.
func (cs *ConfigurationStatus) SetLatestCreatedRevisionName(name string, now time.Time) {
	cs.LatestCreatedRevisionName = name
	if cs.LatestReadyRevisionName != name {
		configurationConditions.mark(&cs.Status, ConfigurationConditionReady, metav1.ConditionUnknown, "",
			"", now)
	}
}

// MarkWaitingForRevision is Knative's message while the latest revision starts.
func (cs *ConfigurationStatus) MarkWaitingForRevision(config string, now time.Time) {
	configurationConditions.mark(&cs.Status, ConfigurationConditionReady, metav1.ConditionUnknown, "",
		fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", config), now)
}

// SetLatestReadyRevisionName records a ready revision; Ready is True when it
// is also the latest created one.
func (cs *ConfigurationStatus) SetLatestReadyRevisionName(name string, now time.Time) {
	cs.LatestReadyRevisionName = name
	if cs.LatestCreatedRevisionName == name {
		configurationConditions.mark(&cs.Status, ConfigurationConditionReady, metav1.ConditionTrue, "", "", now)
	}
}

// MarkLatestCreatedFailed reports that the newest revision failed.
func (cs *ConfigurationStatus) MarkLatestCreatedFailed(name, message string, now time.Time) {
	configurationConditions.mark(&cs.Status, ConfigurationConditionReady, metav1.ConditionFalse, "RevisionFailed",
		fmt.Sprintf("Revision %q failed with message: %s.", name, message), now)
}
