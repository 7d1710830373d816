package gateway

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// A client trickling a body (a byte every 200ms) does not hold a listener
// connection past the route's timeout: the gateway answers 504 and closes
// the connection rather than draining the rest at the client's pace.
func TestSlowBodyDoesNotHoldConnection(t *testing.T) {
	slow := backend(t, "slow", 3*time.Second)
	e := startEnv(t, func(st store.Store) {
		putRoute(t, st, "default", "slow", "http://"+slowHost, servingv1.TrafficTarget{RevisionName: "slow-00001", Percent: pct(100)})
		one := int64(1)
		testenv.PutJSON(t, st, store.RegistryKey("serving.knative.dev", "revisions", "default", "slow-00001"),
			servingv1.Revision{Metadata: metav1.ObjectMeta{Namespace: "default", Name: "slow-00001"}, Spec: servingv1.RevisionSpec{TimeoutSeconds: &one}})
		putInstance(t, st, "default", "slow-00001", "i4", hostport(slow))
	})
	e.eventually(t, "route served", slowHost, func(r reply) bool { return r.status == 504 })

	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", slowHost)
	closed := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c)
		status, _ := br.ReadString('\n')
		for {
			if _, err := br.ReadByte(); err != nil {
				closed <- strings.TrimSpace(status)
				return
			}
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case status := <-closed:
			if !strings.Contains(status, "504") {
				t.Fatalf("status %q, want 504 at the route timeout", status)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Fatalf("connection held %v", d)
			}
			return
		case <-tick.C:
			if time.Since(begin) > 10*time.Second {
				t.Fatal("the gateway kept reading a trickling body for 10s")
			}
			_, _ = fmt.Fprintf(c, "1\r\na\r\n")
		}
	}
}
