package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/pki"
)

// TestNamespaceScopedAccess runs the apiserver as installed (HTTPS, a
// bootstrap token, the kiln CA for client certificates): a token issued
// with `kiln admin token create` for one namespace works there and nowhere
// else, a user certificate speaks for its subject, and an unauthenticated
// client is refused.
func TestNamespaceScopedAccess(t *testing.T) {
	c := startCluster(t)

	tokFile := filepath.Join(c.dir, "team-a.token")
	out := c.mustRun("--namespace", "team-a", "admin", "token", "create", "--role", "edit", "--subject", "alice", "--ttl", "1h")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := os.WriteFile(tokFile, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := []string{"--token-file", tokFile}

	// Its own namespace: write and read.
	if out, err := c.runAs(alice, "--namespace", "team-a", "service", "create", "hello", "--image", c.image, "--no-wait"); err != nil {
		t.Fatalf("create in own namespace: %v\n%s", err, out)
	}
	if out, err := c.runAs(alice, "--namespace", "team-a", "service", "list"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("list in own namespace: %v\n%s", err, out)
	}

	// Another namespace: neither read nor write, with Kubernetes' message.
	c.mustRun("--namespace", "team-b", "service", "create", "other", "--image", c.image, "--no-wait")
	out, err := c.runAs(alice, "--namespace", "team-b", "service", "list")
	want := `services.serving.knative.dev is forbidden: User "alice" cannot list resource "services" in API group "serving.knative.dev" in the namespace "team-b"`
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("list in another namespace: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--namespace", "team-b", "service", "describe", "other"},
		{"--namespace", "team-b", "service", "delete", "other"},
		{"--namespace", "team-b", "service", "create", "intruder", "--image", c.image, "--no-wait"},
		{"route", "list", "-A"},
		{"config", "get", "autoscaler"},
		{"admin", "token", "list"},
	} {
		if out, err := c.runAs(alice, args...); err == nil || !strings.Contains(out, "forbidden") {
			t.Errorf("kiln %s as alice: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out := c.mustRun("--namespace", "team-b", "service", "list"); !strings.Contains(out, "other") {
		t.Fatalf("the other namespace changed:\n%s", out)
	}

	// The same subject by client certificate.
	ca, err := pki.LoadCA(c.caFile, filepath.Join(filepath.Dir(c.caFile), "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.IssueFiles(filepath.Join(c.dir, "pki"), "alice", pki.Identity{Role: pki.RoleUser, Name: "alice"}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := []string{"--client-certificate", f.Cert, "--client-key", f.Key}
	if out, err := c.runAs(cert, "--namespace", "team-a", "service", "list"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("client certificate in own namespace: %v\n%s", err, out)
	}
	if out, err := c.runAs(cert, "--namespace", "team-b", "service", "list"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("client certificate in another namespace: %v\n%s", err, out)
	}

	// Unauthenticated: 401 with a Status body, from the CLI and raw HTTPS.
	if out, err := c.runAs([]string{"--token-file", filepath.Join(c.dir, "absent")}, "service", "list"); err == nil {
		t.Fatalf("no token accepted:\n%s", out)
	}
	resp, err := c.apiClient.Get(c.api + "/apis/serving.knative.dev/v1/namespaces/team-a/services")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct{ Kind, Reason string }
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &st) != nil || st.Reason != "Unauthorized" {
		t.Fatalf("unauthenticated: %d %s", resp.StatusCode, b)
	}
	// Plain HTTP is not served.
	if resp, err := http.Get(strings.Replace(c.api, "https:", "http:", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plain HTTP")
		}
	}

	// Revoked, the token stops working.
	out = c.mustRun("admin", "token", "list")
	var id string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "alice" {
			id = f[0]
		}
	}
	c.mustRun("admin", "token", "revoke", id)
	if out, err := c.runAs(alice, "--namespace", "team-a", "service", "list"); err == nil {
		t.Fatalf("revoked token accepted:\n%s", out)
	}
}
