// Package errdefs declares the sentinel errors shared by every kiln
// component. Errors are wrapped with what was being done and mapped to HTTP
// or gRPC codes only at the edges (apiserver, CLI). This package must never
// import anything from kiln.
package errdefs
