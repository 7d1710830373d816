// Package election runs singleton roles (controller, scheduler, autoscaler)
// under etcd leader election (concurrency.Election). The leader's work gets
// a store.Fence naming its election key and create revision; every write the
// leader makes carries that fence, so a deposed leader cannot write even
// before it notices it lost. This package owns election/<role> keys only.
package election
