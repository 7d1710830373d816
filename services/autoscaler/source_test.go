package autoscaler

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
	pb "github.com/kiln-serving/kiln/proto/kiln/autoscaler/v1"
)

// Under mutual TLS an agent reports only as its own node and an activator
// only as an activator; on a plain listener anything goes, as before.
func TestSourceAllowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		id     *pki.Identity
		source string
		ok     bool
	}{
		{"plain listener", nil, "agent/n1", true},
		{"own node", &pki.Identity{Role: pki.RoleAgent, Name: "n1"}, "agent/n1", true},
		{"other node", &pki.Identity{Role: pki.RoleAgent, Name: "n2"}, "agent/n1", false},
		{"agent without a node", &pki.Identity{Role: pki.RoleAgent}, "agent/", false},
		{"agent as activator", &pki.Identity{Role: pki.RoleAgent, Name: "n1"}, "activator/x", false},
		{"activator", &pki.Identity{Role: pki.RoleActivator}, "activator/host-12", true},
		{"activator as agent", &pki.Identity{Role: pki.RoleActivator}, "agent/n1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.id != nil {
				ctx = mtls.NewContext(ctx, *tc.id)
			}
			err := sourceAllowed(ctx, tc.source)
			if tc.ok != (err == nil) || (err != nil && status.Code(err) != codes.PermissionDenied) {
				t.Fatalf("sourceAllowed(%v, %q) = %v", tc.id, tc.source, err)
			}
		})
	}
	for role, ok := range map[string]bool{pki.RoleAgent: true, pki.RoleActivator: true, pki.RoleGateway: false, pki.RoleXDS: false, pki.RoleUser: false} {
		if err := CallerCheck(pki.Identity{Role: role, Name: "x"}); ok != (err == nil) {
			t.Errorf("CallerCheck(%s) = %v", role, err)
		}
	}
}

// Under mutual TLS an agent's stats count only for instances the store
// places on its node, and only activators may poke.
func TestAgentStatsAndPokesAreBoundToTheSender(t *testing.T) {
	a := New(memstore.New(), registry.New(memstore.New()), Options{}, testenv.Quiet())
	a.nodeOf.Store("hello-00001-abc", "n1")
	a.nodeOf.Store("hello-00001-def", "n2")
	b := a.ownStats(&pb.MetricBatch{Source: "agent/n1", Stats: []*pb.Stat{
		{Namespace: "default", Revision: "hello-00001", PodName: "hello-00001-abc"},
		{Namespace: "default", Revision: "hello-00001", PodName: "hello-00001-def"},
		{Namespace: "default", Revision: "hello-00001", PodName: "unknown"},
	}}, "n1")
	if len(b.Stats) != 1 || b.Stats[0].PodName != "hello-00001-abc" {
		t.Fatalf("kept %v, want only the instance on n1", b.Stats)
	}
	s := &server{a: a}
	for role, want := range map[string]codes.Code{pki.RoleAgent: codes.PermissionDenied, pki.RoleActivator: codes.FailedPrecondition} {
		ctx := mtls.NewContext(context.Background(), pki.Identity{Role: role, Name: "x"})
		// Not leading: an admitted poke gets FAILED_PRECONDITION, a refused one PERMISSION_DENIED.
		if _, err := s.Poke(ctx, &pb.PokeRequest{Namespace: "default", Revision: "hello-00001"}); status.Code(err) != want {
			t.Errorf("poke as %s: %v, want %v", role, err, want)
		}
	}
}
