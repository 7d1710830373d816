package v1

import (
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// conditionSet is Knative's "living" condition set: a Ready condition that
// summarizes dependent conditions. Ready is False if any dependent is False,
// Unknown if any is Unknown, True only when all are True, and it carries the
// reason and message of the first dependent that is not True.
type conditionSet struct {
	dependents []string
}

var (
	serviceConditions       = conditionSet{dependents: []string{ServiceConditionConfigurationsReady, ServiceConditionRoutesReady}}
	configurationConditions = conditionSet{} // Ready is set directly
	revisionConditions      = conditionSet{dependents: []string{RevisionConditionResourcesAvailable, RevisionConditionContainerHealthy}}
	routeConditions         = conditionSet{dependents: []string{RouteConditionAllTrafficAssigned, RouteConditionIngressReady}}
)

// initialize sets Ready and every dependent to Unknown unless already set.
func (cs conditionSet) initialize(st *metav1.Status, now time.Time) {
	for _, t := range append([]string{"Ready"}, cs.dependents...) {
		if st.GetCondition(t) == nil {
			st.SetCondition(metav1.Condition{Type: t, Status: metav1.ConditionUnknown}, now)
		}
	}
}

// mark sets condition t and recomputes Ready when t is a dependent.
func (cs conditionSet) mark(st *metav1.Status, t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	st.SetCondition(metav1.Condition{Type: t, Status: status, Reason: reason, Message: message}, now)
	if t == "Ready" || len(cs.dependents) == 0 {
		return
	}
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue}
	for _, status := range []metav1.ConditionStatus{metav1.ConditionFalse, metav1.ConditionUnknown} {
		found := false
		for _, d := range cs.dependents {
			c := st.GetCondition(d)
			if (c == nil && status == metav1.ConditionUnknown) || (c != nil && c.Status == status) {
				ready.Status = status
				if c != nil {
					ready.Reason, ready.Message = c.Reason, c.Message
				}
				found = true
				break
			}
		}
		if found {
			break
		}
	}
	st.SetCondition(ready, now)
}

// readyFor reports whether status describes the current generation and its
// Ready condition is True.
func readyFor(m *metav1.ObjectMeta, st *metav1.Status) bool {
	return st.ObservedGeneration == m.Generation && st.IsTrue("Ready")
}
