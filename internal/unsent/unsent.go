// Package unsent tells a request that provably never reached its peer,
// the one kind every kiln client may send elsewhere without risking a
// request applied twice (the activator, the gateway, the CLI).
package unsent

import (
	"errors"
	"net"
)

// Is reports whether err means the connection could not be opened, so
// nothing of the request reached the peer.
func Is(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
