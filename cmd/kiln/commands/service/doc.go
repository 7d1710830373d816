// Package service implements `kiln service` (create, update, list,
// describe, delete) with kn's flags, wording and wait-for-ready progress.
// Every spec change is validated offline with the api/serving/v1 rules
// before anything is sent; the server validates again.
package service
