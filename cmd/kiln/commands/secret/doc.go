// Package secret is `kiln secret`: create (tls), list, describe and delete
// TLS secrets, in kubectl's words. The API never returns a private key, so
// nothing here prints one.
package secret
