package testenv

import (
	"testing"
	"time"
)

// DefaultWait is how long Eventually waits unless told otherwise: long
// enough for a loaded 2-core CI machine, short enough to fail a hung test.
const DefaultWait = 10 * time.Second

// Eventually polls cond every few milliseconds until it holds, and fails
// the test naming what it waited for once timeout passes (DefaultWait when
// timeout is 0). It is the one polling helper of kiln's tests; the code
// under test itself is driven by watches, never by polling.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if timeout <= 0 {
		timeout = DefaultWait
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
