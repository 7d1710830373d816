package commands

import (
	"context"
	"strings"
	"testing"
)

// A role given some but not all of the TLS files refuses to start, naming
// what is missing, before it touches etcd.
func TestPartialTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"xds", "--tls-ca-file", "ca.crt"}, "--tls-cert-file is required"},
		{[]string{"autoscaler", "--tls-ca-file", "ca.crt", "--tls-cert-file", "a.crt"}, "--tls-key-file is required"},
		{[]string{"gateway", "--tls-cert-file", "g.crt", "--tls-key-file", "g.key"}, "--tls-ca-file is required"},
		{[]string{"activator", "--tls-key-file", "a.key"}, "--tls-ca-file is required"},
		{[]string{"agent", "--tls-ca-file", "ca.crt", "--tls-key-file", "a.key"}, "--tls-cert-file is required"},
	} {
		app := NewApp()
		err := app.RunContext(context.Background(), append([]string{"kilnd", "--etcd-endpoints", "127.0.0.1:1"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
