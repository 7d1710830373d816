package commands

import (
	"net"
	"testing"
)

func TestAdvertiseAddr(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"0.0.0.0:8090", "127.0.0.1:8090"},
		{"[::]:8090", "127.0.0.1:8090"},
		{"10.0.0.5:8090", "10.0.0.5:8090"},
		{"[fd00::1]:8090", "[fd00::1]:8090"},
	}
	for _, tc := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertiseAddr(addr); got != tc.want {
			t.Errorf("advertiseAddr(%s) = %s, want %s", tc.listen, got, tc.want)
		}
	}
}
