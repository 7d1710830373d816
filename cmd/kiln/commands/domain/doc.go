// Package domain is `kiln domain`: create, update, list, describe and
// delete DomainMappings with kn's flags, wording and tables. It only talks
// to the API server.
package domain
