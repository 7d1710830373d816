// Command hello is kiln's sample app, in the spirit of openshift/hello-openshift:
// it answers every request with $RESPONSE (default "Hello World!") and a
// newline, listens on :$PORT (default 8080) and shuts down cleanly on
// SIGTERM. It must stay dependency-free so it builds into a one-file image.
//
// For autoscaling tests it can hold each request: for $DELAY (a Go
// duration, default none) or for ?sleep=DURATION on the request. Every
// answer carries X-Concurrent (requests in this process when it arrived,
// itself included) and X-Max-Concurrent (the most ever seen at once).
//
// To show what a revision was given, two opt-in endpoints: with
// $FILES_DIR set, GET /files/PATH answers the file FILES_DIR/PATH (mounted
// ConfigMaps, Secrets, tokens), read on each request; with $SHOW_ENV=true,
// GET /env/NAME answers the variable NAME. Both answer 404 for what is not
// there. Leave them unset in anything but a test: they show secrets.
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	response := envOr("RESPONSE", "Hello World!")
	port := envOr("PORT", "8080")
	delay, err := time.ParseDuration(envOr("DELAY", "0s"))
	if err != nil {
		log.Fatalf("hello: DELAY: %v", err)
	}
	var cur, most atomic.Int64
	filesDir, showEnv := os.Getenv("FILES_DIR"), os.Getenv("SHOW_ENV") == "true"

	srv := &http.Server{
		Addr: ":" + port,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rel, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok && filesDir != "" {
				b, err := os.ReadFile(filepath.Join(filesDir, filepath.Clean("/"+rel)))
				if err != nil {
					http.Error(w, err.Error(), http.StatusNotFound)
					return
				}
				_, _ = w.Write(b)
				return
			}
			if name, ok := strings.CutPrefix(r.URL.Path, "/env/"); ok && showEnv {
				v, set := os.LookupEnv(name)
				if !set {
					http.Error(w, name+" is not set", http.StatusNotFound)
					return
				}
				_, _ = w.Write([]byte(v))
				return
			}
			n := cur.Add(1)
			defer cur.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			hold := delay
			if q := r.URL.Query().Get("sleep"); q != "" {
				if d, err := time.ParseDuration(q); err == nil {
					hold = d
				}
			}
			if hold > 0 {
				select {
				case <-time.After(hold):
				case <-r.Context().Done():
				}
			}
			w.Header().Set("X-Concurrent", strconv.FormatInt(n, 10))
			w.Header().Set("X-Max-Concurrent", strconv.FormatInt(most.Load(), 10))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(response + "\n"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("hello: serving on :%s", port)

	select {
	case err := <-errc:
		log.Fatalf("hello: %v", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("hello: shutdown: %v", err)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
