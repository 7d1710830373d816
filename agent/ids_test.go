package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

func TestContainerID(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		readable string
		want     string // "" when a hashed ID is expected
	}{
		{readable: "hello-00001-x7k2p", want: "hello-00001-x7k2p"},
		{readable: "hello-00001-x7k2p.user-container-1", want: "hello-00001-x7k2p.user-container-1"},
		{readable: "hello-00001-x7k2p.init.setup", want: "hello-00001-x7k2p.init.setup"},
		{readable: "hello--world-00001-x7k2p"},
		{readable: long + ".user-container-1"},
		{readable: long + ".init.c", want: long + ".init.c"},
		{readable: long + ".init.setup-db"},
	}
	for _, tt := range tests {
		got := containerID(tt.readable)
		if err := identifiers.Validate(got); err != nil {
			t.Errorf("containerID(%q) = %q: %v", tt.readable, got, err)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("containerID(%q) = %q, want it unchanged", tt.readable, got)
		}
		if tt.want == "" && !strings.HasPrefix(got, hashedIDPrefix) {
			t.Errorf("containerID(%q) = %q, want a hashed ID", tt.readable, got)
		}
		if again := containerID(tt.readable); again != got {
			t.Errorf("containerID(%q) not stable: %q then %q", tt.readable, got, again)
		}
	}
}

// Every name kiln forms from valid Knative names (DNS labels: instance,
// instance.container, instance.init.container) gives a valid containerd
// ID, and distinct names give distinct IDs.
func TestContainerIDAnyKnativeName(t *testing.T) {
	labels := []string{"a", "a-b", "a--b", "a---b", "x1--", "user-container", "queue-proxy",
		strings.Repeat("a", 63), strings.Repeat("a-", 31) + "a", strings.Repeat("b--", 20) + "b", "0"}
	for i := range 30 {
		labels = append(labels, fmt.Sprintf("rev%d--%s-%05d", i, strings.Repeat("z", i), i))
	}
	seen := map[string]string{}
	check := func(readable string) {
		id := containerID(readable)
		if err := identifiers.Validate(id); err != nil {
			t.Errorf("containerID(%q) = %q: %v", readable, id, err)
		}
		if prev, ok := seen[id]; ok && prev != readable {
			t.Errorf("containerID(%q) = containerID(%q) = %q", readable, prev, id)
		}
		seen[id] = readable
	}
	for _, inst := range labels {
		check(inst)
		for _, c := range labels {
			check(inst + "." + c)
			check(inst + ".init." + c)
		}
	}
}
