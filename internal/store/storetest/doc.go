// Package storetest is the conformance suite every store.Store
// implementation must pass: CAS semantics, create-only, fencing, leases and
// watches. Run it from each implementation's tests.
package storetest
