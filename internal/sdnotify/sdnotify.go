// Package sdnotify tells systemd a daemon is ready (Type=notify units) by
// writing to $NOTIFY_SOCKET. Without the variable it does nothing, so it is
// safe to call from tests and foreground runs.
package sdnotify

import (
	"net"
	"os"
)

// Ready sends READY=1.
func Ready() error { return send("READY=1") }

// Stopping sends STOPPING=1.
func Stopping() error { return send("STOPPING=1") }

func send(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
