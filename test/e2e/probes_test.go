package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	kc "github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/testenv"
	"github.com/kiln-serving/kiln/internal/timeout"
)

const probesYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: gated
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
        - image: {{IMAGE}}
          env:
            - name: READY_DELAY
              value: 3s
          readinessProbe:
            exec:
              command: ["/probes", "probe"]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: lively
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
        - image: {{IMAGE}}
          livenessProbe:
            httpGet:
              path: /healthz
            periodSeconds: 1
            failureThreshold: 3
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: streamer
  namespace: default
spec:
  template:
    spec:
      timeoutSeconds: 3
      containers:
        - image: {{IMAGE}}
          ports:
            - name: h2c
              containerPort: 8080
          readinessProbe:
            grpc:
              port: 8080
`

// TestProbesRestartsAndTimeouts runs the probes app on real containerd:
// an exec readiness probe gates traffic until it passes; a failing
// liveness probe restarts the serving container in place (RestartCount 1)
// and the service serves again; a streaming response that started before
// timeoutSeconds keeps its 200 and ends cleanly at the timeout, while one
// that never started gets 504; an h2c port gets HTTP/2 from the queue-proxy, and a
// gRPC app on it is probed with the gRPC health protocol and answers gRPC
// calls through the gateway.
func TestProbesRestartsAndTimeouts(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := imagebuild.BuildGoImage(ctx, "testdata/probes")
	if err != nil {
		t.Fatalf("build probes image: %v", err)
	}
	image := c.registry + "/e2e/probes:latest"
	if _, err := imagebuild.Push(ctx, img, image); err != nil {
		t.Fatalf("push probes image: %v", err)
	}
	file := filepath.Join(t.TempDir(), "probes.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(probesYAML, "{{IMAGE}}", image)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustRun("apply", "-f", file)
	st := c.etcdStore()

	// Exec readiness: the instance, once its container runs (Starting),
	// stays unready until READY_DELAY has passed and the exec probe
	// passes; then the service answers.
	var starting, ready time.Time
	testenv.EventuallyNil(t, 90*time.Second, func() error {
		ins, err := instancesOf(st, "default", "gated-00001")
		if err != nil || len(ins) != 1 {
			return fmt.Errorf("gated instances: %+v %v", ins, err)
		}
		switch in := ins[0]; {
		case in.Ready:
			ready = time.Now()
			return nil
		case in.Phase == kc.PhaseStarting && starting.IsZero():
			starting = time.Now()
		}
		return fmt.Errorf("gated not ready: %+v", ins[0])
	})
	if starting.IsZero() || ready.Sub(starting) < 2*time.Second {
		t.Errorf("gated ready %s after it started (seen starting: %v), before its exec probe could pass", ready.Sub(starting), !starting.IsZero())
	}
	c.eventuallyBody("gated.default.example.com", "HTTP/1.1 ready-after=3s", 30*time.Second)

	// Liveness: /start-failing makes /healthz fail; the container is
	// restarted in place and serves again with a healthy /healthz.
	c.eventuallyBody("lively.default.example.com", "HTTP/1.1 ready-after=0s", 90*time.Second)
	if code, _, err := c.getPath("lively.default.example.com", "/start-failing"); err != nil || code != 200 {
		t.Fatalf("start-failing: %d %v", code, err)
	}
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		ins, err := instancesOf(st, "default", "lively-00001")
		if err != nil {
			return err
		}
		if len(ins) != 1 || ins[0].RestartCount != 1 || !ins[0].Ready {
			return fmt.Errorf("lively instances: %+v", ins)
		}
		return nil
	})
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		code, body, err := c.getPath("lively.default.example.com", "/healthz")
		if err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("healthz after restart: %d %q %v", code, body, err)
		}
		return nil
	})

	// Timeouts (timeoutSeconds 3) and h2c.
	c.eventuallyBody("streamer.default.example.com", "HTTP/2.0 ready-after=0s", 90*time.Second)
	start := time.Now()
	code, body, err := c.getPath("streamer.default.example.com", "/stream?sleep=6s")
	if err != nil || code != 200 || body != timeout.Message {
		t.Errorf("stream past timeoutSeconds: %d %q %v, want a clean 200 ending %q", code, body, err, timeout.Message)
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("stream past timeoutSeconds ended after %s, want about 3s", d)
	}
	code, body, err = c.getPath("streamer.default.example.com", "/stream?first=6s")
	if err != nil || code != http.StatusGatewayTimeout {
		t.Errorf("first byte past timeoutSeconds: %d %q %v, want 504", code, body, err)
	}

	conn, err := grpc.NewClient(strings.TrimPrefix(c.gateway, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("streamer.default.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer gcancel()
	resp, err := healthpb.NewHealthClient(conn).Check(gctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health check through the gateway: %v %v", resp, err)
	}
}
