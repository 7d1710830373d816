package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/imagebuild"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// TestEdgeDropsInternalHeaders: headers kiln's own hops set and trust
// (the revision headers, K-Proxy-Request, K-Network-Probe) never reach a
// container with a client's value, whichever path the request takes, and
// the forwarding headers of the runtime contract do, as the edge set them.
func TestEdgeDropsInternalHeaders(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := imagebuild.BuildGoImage(ctx, "testdata/echoheaders")
	if err != nil {
		t.Fatalf("build echoheaders image: %v", err)
	}
	image := c.registry + "/e2e/echoheaders:latest"
	if _, err := imagebuild.Push(ctx, img, image); err != nil {
		t.Fatalf("push echoheaders image: %v", err)
	}
	c.mustRun("service", "create", "echo", "--image", image)

	const host = "echo.default.example.com"
	want := "Knative-Serving-Revision=echo-00001\nKnative-Serving-Namespace=default\n"
	var body string
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		req, _ := http.NewRequest("GET", c.gateway+"/", nil)
		req.Host = host
		for _, h := range []string{"Knative-Serving-Revision", "Knative-Serving-Namespace", "K-Proxy-Request"} {
			req.Header.Set(h, "spoofed")
		}
		// "queue" would make the queue-proxy answer the probe itself.
		req.Header.Set("K-Network-Probe", "queue")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, want) {
			return &unexpected{code: resp.StatusCode, body: body}
		}
		return nil
	})
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		name, value, _ := strings.Cut(line, "=")
		switch name {
		case "K-Network-Probe":
			if value != "" {
				t.Errorf("container saw %s", line)
			}
		case "K-Proxy-Request":
			// Set by the activator when it is in the path, never the client's.
			if value != "" && value != "activator" {
				t.Errorf("container saw %s", line)
			}
		case "Forwarded":
			// The runtime contract: the edge's RFC 7239 element reaches the
			// container through the activator and queue-proxy.
			if !regexp.MustCompile(`^for="?127\.0\.0\.1"?;proto=http$`).MatchString(value) {
				t.Errorf("container saw %s, want the edge's Forwarded element", line)
			}
		case "X-Forwarded-For":
			for _, ip := range strings.Split(value, ",") {
				if net.ParseIP(strings.TrimSpace(ip)) == nil {
					t.Errorf("container saw %s, want a list of addresses", line)
				}
			}
		case "X-Forwarded-Proto":
			if value != "http" {
				t.Errorf("container saw %s, want the client's scheme", line)
			}
		}
	}
}

type unexpected struct {
	code int
	body string
}

func (u *unexpected) Error() string {
	return "unexpected reply " + http.StatusText(u.code) + ": " + u.body
}
