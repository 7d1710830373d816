// Package encryption seals secret values at rest with AES-256-GCM, keyed
// by a key file in the model of Kubernetes' EncryptionConfiguration with
// the aesgcm provider: the file lists named keys, the first seals every
// write and all of them open reads.
//
// A sealed value is "kiln:enc:aesgcm:v1:<key name>:" followed by a
// 12-byte random nonce and the GCM ciphertext; the store key (the etcd key
// path) is the additional authenticated data, so a sealed value copied
// under another key does not open. Values that do not carry the prefix are
// plain text written before encryption was configured; they still open, and
// are reported as needing a rewrite.
//
// It owns the key file format and the envelope. It must never log or
// return key material or plain text in an error.
package encryption
