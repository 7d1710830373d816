package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-serving/kiln/internal/store"
)

// Quiet is a logger that drops everything, for code under test whose logs
// would only bury the test's own output.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Logger writes warnings and errors to stderr, and everything down to debug
// when KILN_TEST_DEBUG is set, for tests whose failures need the log.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("KILN_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// PutJSON stores v as JSON under key, failing the test on any error. Tests
// use it to play a role that writes a prefix (an agent's instances/, the
// autoscaler's scale/) without running it.
func PutJSON(t testing.TB, st store.Store, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), key, b); err != nil {
		t.Fatal(err)
	}
}

// FreeSubnet picks a 10.x.0.0/16 no route on this host uses yet, so a test
// never shares a subnet with another test's (or the demo's) bridge.
func FreeSubnet(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	for range 100 {
		s := fmt.Sprintf("10.%d.0.0/16", 100+rand.IntN(150))
		if !strings.Contains(string(out), s) {
			return s
		}
	}
	t.Fatal("no free 10.x.0.0/16 subnet")
	return ""
}

var givenPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// FreePort is a TCP port on 127.0.0.1 nothing listens on at the moment of
// the call, for a server a test starts next.
func FreePort(t testing.TB) int {
	t.Helper()
	// Below Linux's ephemeral range (32768-60999 by default): a port taken
	// from :0 lies in it, and any outgoing connection may take it again
	// between this check and the process that binds it. Above the agent's
	// default queue-proxy pool (20000-29999): a queue-proxy started while
	// a test's process is down (killed, to be restarted on its port) could
	// take it. Ports are drawn at random so concurrent test binaries
	// rarely try the same one. A port is handed out once per test binary.
	givenPorts.Lock()
	defer givenPorts.Unlock()
	for range 200 {
		port := 30000 + rand.IntN(2700)
		if givenPorts.m[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		givenPorts.m[port] = true
		return port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
