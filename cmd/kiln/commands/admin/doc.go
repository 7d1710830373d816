// Package admin is `kiln admin`: cluster administration through the API,
// for a cluster-admin (bearer tokens of other subjects).
package admin
