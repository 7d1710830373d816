// Package deadline bounds how long kiln's HTTP servers wait on a client's
// request body, the part http.Server's own timeouts cannot bound without
// also cutting long requests short.
//
// ReadHeaderTimeout and IdleTimeout bound a connection before and between
// requests; a whole-request ReadTimeout would also end a slow but honest
// upload or a streaming request on the data path, where revisions may run
// for timeoutSeconds (up to 600s). So the data path bounds a request by its
// revision's timeout and wraps its handler in Drop, and the API server,
// whose bodies are small, sets a body deadline with Body.
//
// It must never read or alter a body's bytes.
package deadline
