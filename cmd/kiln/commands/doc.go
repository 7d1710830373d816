// Package commands builds the `kiln` command tree: global connection flags and
// one subcommand package per noun (service, revision, route, apply). The
// commands speak kn's words. This package and its children are a thin HTTP
// client: they must never import server-side packages.
package commands
