package v1

import (
	"crypto/rand"
	"encoding/hex"
)

// NewUID returns a random (version 4) UUID for metadata.uid, as the
// Kubernetes API server assigns one to every object it creates.
func NewUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
