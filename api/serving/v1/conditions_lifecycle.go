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

// mark sets condition t and, when t is a dependent, updates Ready the way
// Knative's ConditionSet does: a False dependent makes Ready False with its
// reason; an Unknown one makes Ready Unknown with its reason unless another
// dependent is False; Ready is True once every dependent is True.
func (cs conditionSet) mark(st *metav1.Status, t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	st.SetCondition(metav1.Condition{Type: t, Status: status, Reason: reason, Message: message}, now)
	if t == "Ready" || len(cs.dependents) == 0 {
		return
	}
	ready := metav1.Condition{Type: "Ready", Status: status, Reason: reason, Message: message}
	if status != metav1.ConditionFalse {
		var firstUnknown *metav1.Condition
		for _, d := range cs.dependents {
			c := st.GetCondition(d)
			switch {
			case c == nil:
				if firstUnknown == nil {
					firstUnknown = &metav1.Condition{Status: metav1.ConditionUnknown}
				}
			case c.Status == metav1.ConditionFalse:
				ready = metav1.Condition{Type: "Ready", Status: c.Status, Reason: c.Reason, Message: c.Message}
				st.SetCondition(ready, now)
				return
			case c.Status == metav1.ConditionUnknown && firstUnknown == nil:
				firstUnknown = c
			}
		}
		if status == metav1.ConditionTrue {
			if firstUnknown == nil {
				ready = metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue}
			} else {
				ready = metav1.Condition{Type: "Ready", Status: metav1.ConditionUnknown, Reason: firstUnknown.Reason, Message: firstUnknown.Message}
			}
		}
	}
	st.SetCondition(ready, now)
}

// readyFor reports whether status describes the current generation and its
// Ready condition is True.
func readyFor(m *metav1.ObjectMeta, st *metav1.Status) bool {
	return st.ObservedGeneration == m.Generation && st.IsTrue("Ready")
}
