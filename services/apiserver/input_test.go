package apiserver

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Namespaces and names in paths that could not be a stored object's are
// refused before any store key is built from them.
func TestPathNames(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name, method, path string
		code               int
		msg                string
	}{
		{"namespace with escaped slash", "GET", BasePath + "/namespaces/a%2Fb/services", 400, `invalid path segment "a%2Fb"`},
		{"namespace upper case", "GET", BasePath + "/namespaces/Default/services", 400, `invalid namespace "Default": a lowercase RFC 1123 label`},
		{"namespace dot dot", "GET", BasePath + "/namespaces/%2E%2E/services/x", 400, `invalid namespace ".."`},
		{"name with escaped slash", "GET", svcs + "/a%2F..%2Fb", 400, `invalid path segment`},
		{"name dot dot", "DELETE", svcs + "/..", 400, ``},
		{"name underscore", "GET", svcs + "/a_b", 400, `invalid name "a_b": a lowercase RFC 1123 subdomain`},
		{"secret namespace", "GET", SecretsPath + "/namespaces/x%2Fa/secrets/b", 400, `invalid path segment`},
		{"secret name dotted", "GET", SecretsPath + "/namespaces/default/secrets/a.b", 400, `invalid name "a.b": a lowercase RFC 1123 label`},
		{"secret name dot dot", "DELETE", SecretsPath + "/namespaces/default/secrets/%2E%2E", 400, `invalid name ".."`},
		{"valid name, absent", "GET", svcs + "/hello", 404, `not found`},
		{"valid secret name, absent", "GET", SecretsPath + "/namespaces/default/secrets/cert", 404, `not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, tc.method, tc.path, "")
			if code != tc.code {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, b, tc.code)
			}
			if code != 400 && code != 404 {
				return
			}
			st := decodeStatus(t, b)
			if !strings.Contains(st.Message, tc.msg) {
				t.Fatalf("message %q, want it to contain %q", st.Message, tc.msg)
			}
			if code == 400 && st.Reason != "BadRequest" {
				t.Fatalf("reason %q", st.Reason)
			}
		})
	}
}

// A resourceVersion that is not a number can never match: 400, not 409.
func TestNonNumericResourceVersion(t *testing.T) {
	srv, _ := newServer(t)
	if code, b := do(t, srv, "POST", svcs, svcJSON("hello", "img")); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, rv := range []string{"abc", "-1", "1e3", "0x10"} {
		code, b := do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img2", `,"resourceVersion":"`+rv+`"`))
		st := decodeStatus(t, b)
		if code != http.StatusBadRequest || st.Reason != "BadRequest" || !strings.Contains(st.Message, "resourceVersion") {
			t.Errorf("resourceVersion %q: %d %s, want 400 BadRequest", rv, code, b)
		}
	}
	// A stale but numeric one is still a conflict.
	if code, b := do(t, srv, "PUT", svcs+"/hello", svcJSON("hello", "img2", `,"resourceVersion":"1"`)); code != http.StatusConflict {
		t.Errorf("stale resourceVersion: %d %s, want 409", code, b)
	}
}

// A secret whose body names it with something other than a DNS-1123 label
// is invalid (422) with the field at fault.
func TestSecretNameInBody(t *testing.T) {
	srv, _ := newServer(t)
	for _, name := range []string{"a.b", "a/b", "..", "A"} {
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/tls","metadata":{"name":%q}}`, name)
		code, b := do(t, srv, "POST", SecretsPath+"/namespaces/default/secrets", body)
		st := decodeStatus(t, b)
		if code != 422 || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.name" {
			t.Errorf("name %q: %d %s, want 422 at metadata.name", name, code, b)
		}
	}
}

// The API server bounds bodies: a body over maxBody is refused as soon as
// the limit is passed, and bodyTimeout is short. (The deadline itself is
// tested in internal/deadline.)
func TestBodyBounded(t *testing.T) {
	if bodyTimeout > time.Minute {
		t.Fatalf("bodyTimeout %v: a slow client would hold a connection that long", bodyTimeout)
	}
	srv, _ := newServer(t)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", svcs, token, 2*maxBody)
	// A body over the limit is refused once the limit is passed, with
	// Kubernetes' 413.
	chunk := strings.Repeat(" ", 64<<10)
	for range 2*maxBody/len(chunk) + 1 {
		if _, err := c.Write([]byte(chunk)); err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "413") {
		t.Fatalf("oversized body: %q %v", line, err)
	}
}
