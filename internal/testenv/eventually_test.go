package testenv

import (
	"testing"
	"time"
)

type fatalRecorder struct {
	testing.TB
	failed string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, "three polls", 0, func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != rec {
				panic(r)
			}
		}()
		Eventually(rec, "never", 20*time.Millisecond, func() bool { return false })
	}()
	if rec.failed == "" {
		t.Fatal("a condition that never holds did not fail the test")
	}
}
