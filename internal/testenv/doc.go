// Package testenv starts the real dependencies tests need — embedded etcd,
// a private containerd — on free ports and temporary directories, and tears
// them down when the test ends. Tests never rely on daemons left running on
// the machine. Only _test.go files may import this package.
package testenv
