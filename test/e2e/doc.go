// Package e2e runs kiln end to end: the real kiln and kilnd binaries, each
// role in its own process, an embedded etcd, a private containerd with runc
// and CNI, a local OCI registry holding the hello sample, and HTTP through
// the xDS-driven gateway. The tests need root; CI runs them as root.
package e2e
