package commands

import (
	"strings"
	"testing"
	"time"
)

// --leader-ttl must be whole seconds, at least one; a good value reaches
// every leader election of the process.
func TestLeaderTTLFlag(t *testing.T) {
	defer func(old time.Duration) { leaderTTL = old }(leaderTTL)
	for _, bad := range []string{"1500ms", "0s", "-2s"} {
		err := NewApp().Run([]string{"kilnd", "--leader-ttl", bad, "admin"})
		if err == nil || !strings.Contains(err.Error(), "--leader-ttl") {
			t.Errorf("--leader-ttl %s: err = %v, want it refused naming the flag", bad, err)
		}
	}
	if err := NewApp().Run([]string{"kilnd", "--leader-ttl", "3s", "admin"}); err != nil {
		t.Fatalf("--leader-ttl 3s: %v", err)
	}
	if leaderTTL != 3*time.Second {
		t.Errorf("leaderTTL = %v, want 3s", leaderTTL)
	}
}
