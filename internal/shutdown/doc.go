// Package shutdown tells long-lived HTTP handlers (watches, streams that
// never end on their own) that their server has begun a graceful stop, so
// they close their stream cleanly and http.Server.Shutdown, which waits
// for every request in flight, does not spend its whole grace on them.
// It carries one signal in a request's context; it never stops a server
// or cancels a request itself.
package shutdown
