package agent

import (
	"errors"

	"github.com/kiln-serving/kiln/agent/runtime"
	"github.com/kiln-serving/kiln/internal/cluster"
)

// reasonRunAsRoot is the failure reason of a container refused under
// runAsNonRoot: the kubelet's, so Knative users recognise it.
const reasonRunAsRoot = "CreateContainerConfigError"

// runtimeSecurity turns a placement's securityContext into the runtime's.
// Ranges were checked by validatePlacement.
func runtimeSecurity(s *cluster.Security) runtime.Security {
	if s == nil {
		return runtime.Security{}
	}
	out := runtime.Security{
		RunAsNonRoot:             s.RunAsNonRoot,
		ReadOnlyRootfs:           s.ReadOnlyRootFilesystem,
		AllowPrivilegeEscalation: s.AllowPrivilegeEscalation,
		CapAdd:                   s.CapAdd,
		CapDrop:                  s.CapDrop,
		SeccompUnconfined:        s.SeccompUnconfined,
	}
	if s.RunAsUser != nil {
		v := uint32(*s.RunAsUser)
		out.UID = &v
	}
	if s.RunAsGroup != nil {
		v := uint32(*s.RunAsGroup)
		out.GID = &v
	}
	for _, g := range s.SupplementalGroups {
		out.AdditionalGIDs = append(out.AdditionalGIDs, uint32(g))
	}
	return out
}

// startFailure is the reason a container that did not start fails its
// instance with: reason, unless the securityContext refused it.
func startFailure(err error, reason string) string {
	if errors.Is(err, runtime.ErrRunAsRoot) {
		return reasonRunAsRoot
	}
	return reason
}
