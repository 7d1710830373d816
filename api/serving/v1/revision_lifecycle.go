package v1

import (
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// IsReady reports whether the current generation is observed and Ready.
func (r *Revision) IsReady() bool { return readyFor(&r.Metadata, &r.Status.Status) }

// IsFailed reports whether Ready is False.
func (r *Revision) IsFailed() bool {
	c := r.Status.GetCondition(RevisionConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse
}

// InitializeConditions sets Ready, ResourcesAvailable and ContainerHealthy
// to Unknown where absent. Active is informational and not part of Ready.
func (rs *RevisionStatus) InitializeConditions(now time.Time) {
	revisionConditions.initialize(&rs.Status, now)
}

// MarkCondition sets ResourcesAvailable, ContainerHealthy or Active and
// recomputes Ready (Active never affects Ready).
func (rs *RevisionStatus) MarkCondition(t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	if t == RevisionConditionActive {
		rs.SetCondition(metav1.Condition{Type: t, Status: status, Reason: reason, Message: message}, now)
		return
	}
	revisionConditions.mark(&rs.Status, t, status, reason, message, now)
}
