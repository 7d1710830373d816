// Package embedetcd runs a single-member etcd inside the process, for
// `kilnd dev` and tests. Production uses an external etcd cluster; nothing
// here must be reachable from a production code path.
package embedetcd
