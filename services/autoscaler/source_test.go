package autoscaler

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
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
