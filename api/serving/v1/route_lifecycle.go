package v1

import (
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// IsReady reports whether the current generation is observed and Ready.
func (r *Route) IsReady() bool { return readyFor(&r.Metadata, &r.Status.Status) }

// InitializeConditions sets Ready, AllTrafficAssigned and IngressReady to
// Unknown where absent.
func (rs *RouteStatus) InitializeConditions(now time.Time) {
	routeConditions.initialize(&rs.Status, now)
}

// MarkCondition sets AllTrafficAssigned or IngressReady and recomputes Ready.
func (rs *RouteStatus) MarkCondition(t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	routeConditions.mark(&rs.Status, t, status, reason, message, now)
}
