// Package printer renders kiln objects for the CLI: -o yaml|json, tables
// through text/tabwriter, ages and condition summaries in kn's words. It
// only formats; it must never make requests.
package printer
