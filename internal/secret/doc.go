// Package secret stores TLS secrets (api/core/v1 Secret) under the
// secrets/ prefix of the store.
//
// It owns the stored shape of a secret: JSON, sealed with the key file's
// write key when one is configured (package encryption), so etcd, its
// backups and its snapshots hold no private key in the clear; values written
// before encryption still read, and Reencrypt moves every value to the
// current write key. Values carry private keys, so only the roles that serve
// them may use this package: the apiserver (which writes them and never
// hands a private key back, see Redact) and the xds server (which delivers
// them to edges over SDS). It must never log a secret's data.
package secret
