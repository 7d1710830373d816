package shutdown

import "context"

type key struct{}

// With returns ctx carrying stopping, a channel the server closes when its
// graceful stop begins. Servers set it as their http.Server.BaseContext.
func With(ctx context.Context, stopping <-chan struct{}) context.Context {
	return context.WithValue(ctx, key{}, stopping)
}

// Stopping is the channel With put in ctx: closed once the server serving
// the request begins to stop. Without one it is nil, which never fires in
// a select.
func Stopping(ctx context.Context) <-chan struct{} {
	c, _ := ctx.Value(key{}).(<-chan struct{})
	return c
}
