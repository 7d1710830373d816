package testenv

import (
	"errors"
	"testing"
	"time"
)

// DefaultWait is how long Eventually waits unless told otherwise: long
// enough for a loaded 2-core CI machine, short enough to fail a hung test.
const DefaultWait = 10 * time.Second

// Eventually polls cond (every 5ms at first, backing off to 50ms) until it holds, and fails
// the test naming what it waited for once timeout passes (DefaultWait when
// timeout is 0). With EventuallyNil it is kiln's one polling loop for
// tests; the code under test itself is driven by watches, never by polling.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	EventuallyNil(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	})
}

// EventuallyNil polls check until it returns nil, and fails the test with
// the last error check returned once timeout passes (DefaultWait when 0),
// so the failure says what was last seen, not only what was awaited.
func EventuallyNil(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	if timeout <= 0 {
		timeout = DefaultWait
	}
	deadline := time.Now().Add(timeout)
	// Quick at first for in-process checks; gentler later for checks that
	// make HTTP requests or run the CLI.
	interval := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", timeout, err)
			return
		}
		time.Sleep(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}
