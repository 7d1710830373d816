// Package testenv starts the real dependencies tests need — embedded etcd,
// a private containerd — on free ports and temporary directories, and tears
// them down when the test ends. Tests never rely on daemons left running on
// the machine. Only _test.go files may import this package. Its command
// etcdmember runs one member of a multi-member etcd as its own process, for
// tests that kill a member.
package testenv
