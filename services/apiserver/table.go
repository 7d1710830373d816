package apiserver

import "net/http"

// wantsTable reports whether the client asked for the Table form
// (Accept: application/json;as=Table;v=v1;g=meta.k8s.io).
func wantsTable(r *http.Request) bool { return false }

// writeTable answers a get or list in the Table form: one row per object
// with a's printer columns. objs are the objects as they would be returned
// in JSON; listRV and cont are the list's resourceVersion and continue token.
func writeTable(w http.ResponseWriter, r *http.Request, a apiResource, objs []any, listRV, cont string) {
	http.Error(w, "Table output is not supported", http.StatusNotAcceptable)
}
