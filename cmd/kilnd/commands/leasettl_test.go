package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/agent"
)

// --lease-ttl must be whole seconds, at least two, and is refused naming
// the flag before the agent connects anywhere; a good value (or the 5s
// default) is the agent's node lease TTL.
func TestAgentLeaseTTLFlag(t *testing.T) {
	for _, bad := range []string{"1500ms", "1s", "0s", "-3s", "2500ms"} {
		err := NewApp().Run([]string{"kilnd", "agent", "--lease-ttl", bad})
		if err == nil || !strings.Contains(err.Error(), "--lease-ttl") {
			t.Errorf("--lease-ttl %s: err = %v, want it refused naming the flag", bad, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 5 * time.Second},
		{[]string{"--lease-ttl", "2s"}, 2 * time.Second},
		{[]string{"--lease-ttl", "7s"}, 7 * time.Second},
	} {
		var got agent.Config
		app := &cli.App{Flags: agentFlags, Action: func(c *cli.Context) error {
			var err error
			got, err = agentConfig(c)
			return err
		}}
		if err := app.Run(append([]string{"agent"}, tc.args...)); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got.LeaseTTL != tc.want {
			t.Errorf("%v: LeaseTTL = %v, want %v", tc.args, got.LeaseTTL, tc.want)
		}
	}
}
