package testenv

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/embedetcd"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
)

// StartEtcd starts an embedded etcd on a free port with its data in a
// temporary directory and returns a store connected to it. Both stop when
// the test ends.
func StartEtcd(t testing.TB) *etcdstore.Store {
	t.Helper()
	srv := startEmbedded(t)
	st, err := etcdstore.Dial([]string{srv.Endpoint}, 5*time.Second)
	if err != nil {
		srv.Close()
		t.Fatalf("dial embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		st.Close()
		srv.Close()
	})
	return st
}

// EtcdEndpoint starts an embedded etcd and returns only its client URL, for
// tests that start kiln binaries as separate processes.
func EtcdEndpoint(t testing.TB) string {
	t.Helper()
	srv := startEmbedded(t)
	t.Cleanup(srv.Close)
	return srv.Endpoint
}

// startEmbedded starts an embedded etcd on free ports. A port picked free
// can be taken by another test process before etcd binds it; such a start
// is tried again, in a fresh directory, on other ports.
func startEmbedded(t testing.TB) *embedetcd.Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		srv, err := embedetcd.Start(t.TempDir(), "127.0.0.1:0")
		if err == nil {
			return srv
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("embedded etcd: %v", err)
		}
	}
}
