package v1

import (
	"fmt"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// IsReady reports whether the controller has observed the current
// generation and found it Ready.
func (s *Service) IsReady() bool { return readyFor(&s.Metadata, &s.Status.Status) }

// IsFailed reports whether the current generation's Ready is False.
func (s *Service) IsFailed() bool {
	c := s.Status.GetCondition(ServiceConditionReady)
	return s.Status.ObservedGeneration == s.Metadata.Generation && c != nil && c.Status == metav1.ConditionFalse
}

// InitializeConditions sets Ready, ConfigurationsReady and RoutesReady to
// Unknown where absent.
func (ss *ServiceStatus) InitializeConditions(now time.Time) {
	serviceConditions.initialize(&ss.Status, now)
}

// MarkCondition sets a dependent condition (ConfigurationsReady or
// RoutesReady) and recomputes Ready.
func (ss *ServiceStatus) MarkCondition(t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	serviceConditions.mark(&ss.Status, t, status, reason, message, now)
}

// PropagateConfigurationStatus copies the revision names and mirrors the
// Configuration's Ready into ConfigurationsReady.
func (ss *ServiceStatus) PropagateConfigurationStatus(cs *ConfigurationStatus, now time.Time) {
	ss.ConfigurationStatusFields = cs.ConfigurationStatusFields
	c := cs.GetCondition(ConfigurationConditionReady)
	switch {
	case c == nil:
		ss.MarkCondition(ServiceConditionConfigurationsReady, metav1.ConditionUnknown, "", "", now)
	default:
		ss.MarkCondition(ServiceConditionConfigurationsReady, c.Status, c.Reason, c.Message, now)
	}
}

// PropagateRouteStatus copies URL, address and traffic and mirrors the
// Route's Ready into RoutesReady.
func (ss *ServiceStatus) PropagateRouteStatus(rs *RouteStatus, now time.Time) {
	ss.RouteStatusFields = rs.RouteStatusFields
	c := rs.GetCondition(RouteConditionReady)
	switch {
	case c == nil:
		ss.MarkCondition(ServiceConditionRoutesReady, metav1.ConditionUnknown, "", "", now)
	default:
		ss.MarkCondition(ServiceConditionRoutesReady, c.Status, c.Reason, c.Message, now)
	}
}

// MarkRouteNotYetReady is what Knative says while the Route catches up with
// a new generation.
func (ss *ServiceStatus) MarkRouteNotYetReady(now time.Time) {
	ss.MarkCondition(ServiceConditionRoutesReady, metav1.ConditionUnknown, "RouteNotYetReady",
		"The Route is still working to reflect the latest desired specification.", now)
}

// MarkConfigurationNotOwned / MarkRouteNotOwned report a same-named child
// the Service does not control.
func (ss *ServiceStatus) MarkConfigurationNotOwned(name string, now time.Time) {
	ss.MarkCondition(ServiceConditionConfigurationsReady, metav1.ConditionFalse, "NotOwned",
		fmt.Sprintf("There is an existing Configuration %q that we do not own.", name), now)
}

// MarkRouteNotOwned: see MarkConfigurationNotOwned.
func (ss *ServiceStatus) MarkRouteNotOwned(name string, now time.Time) {
	ss.MarkCondition(ServiceConditionRoutesReady, metav1.ConditionFalse, "NotOwned",
		fmt.Sprintf("There is an existing Route %q that we do not own.", name), now)
}
