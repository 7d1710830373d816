package gateway

import "testing"

func TestForwardedElement(t *testing.T) {
	tests := []struct {
		remote, proto, want string
	}{
		{"192.0.2.60:4711", "http", "for=192.0.2.60;proto=http"},
		{"[2001:db8:cafe::17]:4711", "https", `for="[2001:db8:cafe::17]";proto=https`},
		{"[::ffff:192.0.2.1]:80", "http", "for=192.0.2.1;proto=http"},
		{"@", "http", "for=unknown;proto=http"},
		{"", "https", "for=unknown;proto=https"},
	}
	for _, tt := range tests {
		if got := forwardedElement(tt.remote, tt.proto); got != tt.want {
			t.Errorf("forwardedElement(%q, %q) = %s, want %s", tt.remote, tt.proto, got, tt.want)
		}
	}
}
