package v1

import (
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

func TestServiceLifecycle(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := svc("hello")
	s.Metadata.Generation = 1
	s.Status.InitializeConditions(now)
	if c := s.Status.GetCondition(ServiceConditionReady); c == nil || c.Status != metav1.ConditionUnknown {
		t.Fatalf("Ready after init = %+v", c)
	}

	var cs ConfigurationStatus
	cs.InitializeConditions(now)
	cs.SetLatestCreatedRevisionName("hello-00001", now)
	cs.MarkWaitingForRevision("hello", now)
	s.Status.MarkRouteNotYetReady(now)
	if m := s.Status.GetCondition(ServiceConditionReady).Message; m != "The Route is still working to reflect the latest desired specification." {
		t.Fatalf("Ready message = %q: the latest Unknown dependent must explain Ready", m)
	}
	s.Status.PropagateConfigurationStatus(&cs, now)
	ready := s.Status.GetCondition(ServiceConditionReady)
	if ready.Status != metav1.ConditionUnknown || ready.Message != `Configuration "hello" is waiting for a Revision to become ready.` {
		t.Fatalf("Ready while waiting = %+v", ready)
	}

	cs.SetLatestReadyRevisionName("hello-00001", now)
	s.Status.PropagateConfigurationStatus(&cs, now)
	var rs RouteStatus
	rs.InitializeConditions(now)
	rs.MarkCondition(RouteConditionAllTrafficAssigned, metav1.ConditionTrue, "", "", now)
	rs.MarkCondition(RouteConditionIngressReady, metav1.ConditionTrue, "", "", now)
	rs.URL = "http://hello.default.example.com"
	s.Status.PropagateRouteStatus(&rs, now)
	if s.IsReady() {
		t.Fatal("Ready before observedGeneration caught up")
	}
	s.Status.ObservedGeneration = 1
	if !s.IsReady() || s.Status.URL != rs.URL || s.Status.LatestReadyRevisionName != "hello-00001" {
		t.Fatalf("service not ready: %+v", s.Status)
	}

	cs.MarkLatestCreatedFailed("hello-00002", "image pull failed", now.Add(time.Second))
	s.Status.PropagateConfigurationStatus(&cs, now.Add(time.Second))
	if !s.IsFailed() || s.Status.GetCondition(ServiceConditionReady).Reason != "RevisionFailed" {
		t.Fatalf("failure not propagated: %+v", s.Status.Conditions)
	}
}

func TestRevisionActiveDoesNotAffectReady(t *testing.T) {
	now := time.Unix(1700000000, 0)
	r := &Revision{}
	r.Status.InitializeConditions(now)
	r.Status.MarkCondition(RevisionConditionResourcesAvailable, metav1.ConditionTrue, "", "", now)
	r.Status.MarkCondition(RevisionConditionContainerHealthy, metav1.ConditionTrue, "", "", now)
	r.Status.MarkCondition(RevisionConditionActive, metav1.ConditionFalse, "NoTraffic", "scaled to zero", now)
	if !r.IsReady() {
		t.Fatalf("revision should be ready while inactive: %+v", r.Status.Conditions)
	}
}
