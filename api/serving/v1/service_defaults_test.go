package v1

import (
	"context"
	"testing"
)

func TestServiceSetDefaults(t *testing.T) {
	tests := []struct {
		name  string
		svc   *Service
		check func(t *testing.T, s *Service)
	}{
		{name: "bare service", svc: svc("hello"), check: func(t *testing.T, s *Service) {
			if s.APIVersion != APIVersion || s.Kind != KindService {
				t.Errorf("type meta = %s/%s", s.APIVersion, s.Kind)
			}
			rs := s.Spec.Template.Spec
			if rs.Containers[0].Name != DefaultContainerName {
				t.Errorf("container name = %q", rs.Containers[0].Name)
			}
			if rs.ContainerConcurrency == nil || *rs.ContainerConcurrency != 0 {
				t.Errorf("containerConcurrency = %v", rs.ContainerConcurrency)
			}
			if rs.TimeoutSeconds == nil || *rs.TimeoutSeconds != 300 {
				t.Errorf("timeoutSeconds = %v", rs.TimeoutSeconds)
			}
			if len(rs.Containers[0].Ports) != 0 {
				t.Errorf("ports must stay unset: %+v", rs.Containers[0])
			}
			if len(s.Spec.Traffic) != 1 || !*s.Spec.Traffic[0].LatestRevision || *s.Spec.Traffic[0].Percent != 100 {
				t.Errorf("traffic = %+v", s.Spec.Traffic)
			}
		}},
		{name: "user values kept", svc: svc("hello", func(s *Service) {
			s.Spec.Template.Spec.Containers[0].Name = "app"
			s.Spec.Template.Spec.ContainerConcurrency = i64(10)
			s.Spec.Template.Spec.TimeoutSeconds = i64(30)
			s.Spec.Traffic = []TrafficTarget{{RevisionName: "hello-00001", Percent: i64(100)}}
		}), check: func(t *testing.T, s *Service) {
			rs := s.Spec.Template.Spec
			if rs.Containers[0].Name != "app" || *rs.ContainerConcurrency != 10 || *rs.TimeoutSeconds != 30 {
				t.Errorf("user values overwritten: %+v", rs)
			}
			if len(s.Spec.Traffic) != 1 || s.Spec.Traffic[0].LatestRevision == nil || *s.Spec.Traffic[0].LatestRevision {
				t.Errorf("pinned target must get latestRevision=false: %+v", s.Spec.Traffic)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.svc.SetDefaults(context.Background())
			tc.check(t, tc.svc)
			again := *tc.svc
			again.SetDefaults(context.Background())
			if len(again.Spec.Traffic) != len(tc.svc.Spec.Traffic) {
				t.Error("SetDefaults is not idempotent")
			}
		})
	}
}
