package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/testenv"
)

// objectsYAML is a Service given a ConfigMap and a Secret every way
// Kubernetes gives them: env valueFrom and envFrom, configMap and secret
// volumes, a projected volume merging both with a service account token,
// and that token alone by subPath (as Knative's conformance mounts it).
const objectsYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: objs
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: {{IMAGE}}
          env:
            - name: SHOW_ENV
              value: "true"
            - name: FILES_DIR
              value: /
            - name: RESPONSE
              valueFrom:
                configMapKeyRef: {name: app-config, key: greeting}
            - name: PASSWORD
              valueFrom:
                secretKeyRef: {name: app-secret, key: password}
            - name: NOT_THERE
              valueFrom:
                secretKeyRef: {name: app-secret, key: nope, optional: true}
          envFrom:
            - prefix: CM_
              configMapRef: {name: app-config}
            - prefix: SEC_
              secretRef: {name: app-secret}
            - configMapRef: {name: absent, optional: true}
          volumeMounts:
            - {name: cm, mountPath: /etc/cm}  # read-only by default, as Knative makes it
            - {name: sec, mountPath: /etc/sec, readOnly: true}
            - {name: proj, mountPath: /etc/proj, readOnly: true}
            - {name: proj, mountPath: /sa/token, subPath: token, readOnly: true}
      volumes:
        - name: cm
          configMap: {name: app-config}
        - name: sec
          secret:
            secretName: app-secret
            items: [{key: password, path: dir/pw}]
        - name: proj
          projected:
            defaultMode: 0444
            sources:
              - configMap:
                  name: app-config
              - secret:
                  name: app-secret
                  items: [{key: world, path: world}]
              - serviceAccountToken: {audience: api, path: token}
`

// createCore creates a core/v1 object through the API, as kubectl does.
func (c *cluster) createCore(resource, body string) {
	c.t.Helper()
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		c.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", c.api+"/api/v1/namespaces/default/"+resource, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.apiClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("create %s: %d %s", resource, resp.StatusCode, b)
	}
}

// getPath is GET host+path through the gateway.
func (c *cluster) getPath(host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", c.gateway+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestConfigMapsAndSecrets runs a Service that reads a ConfigMap and a
// Secret through env and volumes, and one whose ConfigMap is missing: it
// fails with the kubelet's reason and message, and runs once the
// ConfigMap is created.
func TestConfigMapsAndSecrets(t *testing.T) {
	c := startCluster(t)
	c.createCore("configmaps", `{"metadata":{"name":"app-config"},"data":{"greeting":"Hello from a ConfigMap","world":"cm-world","other":"cm-other"}}`)
	c.createCore("secrets", `{"metadata":{"name":"app-secret"},"stringData":{"password":"s3cret","world":"secret-world"}}`)
	c.apply("objs", strings.ReplaceAll(objectsYAML, "{{IMAGE}}", c.image))
	const host = "objs.default.example.com"
	c.eventuallyBody(host, "Hello from a ConfigMap", 90*time.Second)

	for path, want := range map[string]string{
		"/env/PASSWORD":            "s3cret",
		"/env/CM_other":            "cm-other",
		"/env/SEC_world":           "secret-world",
		"/files/etc/cm/greeting":   "Hello from a ConfigMap",
		"/files/etc/sec/dir/pw":    "s3cret",
		"/files/etc/proj/other":    "cm-other",
		"/files/etc/proj/world":    "secret-world", // the later source wins
		"/files/etc/proj/greeting": "Hello from a ConfigMap",
	} {
		if code, body, err := c.getPath(host, path); err != nil || code != 200 || body != want {
			t.Errorf("GET %s = %d %q %v, want %q", path, code, body, err, want)
		}
	}
	for _, path := range []string{"/env/NOT_THERE", "/files/etc/sec/password"} {
		if code, body, _ := c.getPath(host, path); code != 404 {
			t.Errorf("GET %s = %d %q, want 404", path, code, body)
		}
	}
	// The token by subPath and in the projected directory: a JWT for the
	// default service account with the audience asked.
	_, tok, _ := c.getPath(host, "/files/sa/token")
	_, same, _ := c.getPath(host, "/files/etc/proj/token")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || tok != same {
		t.Fatalf("token %q (projected dir: %q), want one JWT", tok, same)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub string   `json:"sub"`
		Aud []string `json:"aud"`
		Exp int64    `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub != "system:serviceaccount:default:default" ||
		len(claims.Aud) != 1 || claims.Aud[0] != "api" || claims.Exp < time.Now().Unix() {
		t.Errorf("claims %s (%v)", payload, err)
	}
	// No value travels in placements.
	kvs, _, err := c.etcdStore().List(t.Context(), "/kiln/placements/")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if bytes.Contains(kv.Value, []byte("s3cret")) || bytes.Contains(kv.Value, []byte("Hello from a ConfigMap")) {
			t.Errorf("placement %s holds a value: %s", kv.Key, kv.Value)
		}
	}

	// A missing ConfigMap: the instance waits in CreateContainerConfigError
	// and the revision keeps Deploying; creating the ConfigMap lets the
	// agent's retry start it.
	c.apply("late", missingConfigMapService("late", c.image))
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		kvs, _, err := c.etcdStore().List(t.Context(), "/kiln/instances/node-1/late-00001-")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var in struct{ Phase, Reason, Message string }
			if json.Unmarshal(kv.Value, &in) == nil && in.Phase == "Failed" && in.Reason == "CreateContainerConfigError" &&
				in.Message == `configmap "late-config" not found` {
				return nil
			}
		}
		return fmt.Errorf("no instance waiting for its ConfigMap: %d records", len(kvs))
	})
	if conds, err := c.conditionsOf("revision", "late-00001"); err != nil || conds["Ready"].Status != "Unknown" || conds["Ready"].Reason != "Deploying" {
		t.Errorf("revision waiting for its ConfigMap: %+v, %v; want Ready=Unknown/Deploying", conds["Ready"], err)
	}
	c.createCore("configmaps", `{"metadata":{"name":"late-config"},"data":{"greeting":"Late but here"}}`)
	c.eventuallyBody("late.default.example.com", "Late but here", 90*time.Second)

	// Past progress-deadline the revision fails with the waiting
	// container's reason and message, as Knative reports it.
	c.mustRun("config", "set", "deployment", "progress-deadline=10s")
	c.apply("nocm", missingConfigMapService("nocm", c.image))
	testenv.EventuallyNil(t, 60*time.Second, func() error {
		conds, err := c.conditionsOf("revision", "nocm-00001")
		if err != nil {
			return err
		}
		ra := conds["ResourcesAvailable"]
		if ra.Status != "False" || ra.Reason != "CreateContainerConfigError" || ra.Message != `configmap "nocm-config" not found` {
			return fmt.Errorf("revision ResourcesAvailable %+v", ra)
		}
		return nil
	})
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		conds, err := c.conditionsOf("service", "nocm")
		if err != nil {
			return err
		}
		if r := conds["Ready"]; r.Status != "False" {
			return fmt.Errorf("service Ready %+v", r)
		}
		return nil
	})
}

// missingConfigMapService is a Service whose RESPONSE comes from the
// ConfigMap NAME-config, which the test creates later or never.
func missingConfigMapService(name, image string) string {
	return `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: ` + name + `
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ` + image + `
          env:
            - name: RESPONSE
              valueFrom:
                configMapKeyRef: {name: ` + name + `-config, key: greeting}
`
}
