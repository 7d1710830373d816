// Command probes is the end-to-end tests' app for probes, restarts,
// timeouts and protocols. It listens on :$PORT (default 8080), speaking
// HTTP/1.1 and h2c, and serves:
//
//	/healthz        200, or 500 once /start-failing was called
//	/start-failing  makes /healthz (and so `probes probe`) fail
//	/stream         waits ?first=DURATION, writes its status, then
//	                ?sleep=DURATION later its body
//	/               "<protocol> ready-after=<READY_DELAY>" (HTTP/1.1 or HTTP/2.0)
//
// gRPC requests (HTTP/2, application/grpc) reach a gRPC server with the
// standard health service, SERVING.
//
// READY_DELAY (a Go duration) makes /healthz fail until that long after
// start. `probes probe` is an exec probe: it exits 0 when /healthz
// answers 200, 1 otherwise.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	delay, err := time.ParseDuration(envOr("READY_DELAY", "0s"))
	if err != nil {
		log.Fatalf("probes: READY_DELAY: %v", err)
	}
	readyAt := time.Now().Add(delay)
	var failing atomic.Bool

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() || time.Now().Before(readyAt) {
			http.Error(w, "not healthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/start-failing", func(w http.ResponseWriter, _ *http.Request) {
		failing.Store(true)
		fmt.Fprintln(w, "will now fail")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		first, _ := time.ParseDuration(r.URL.Query().Get("first"))
		sleep, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		select {
		case <-time.After(first):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(sleep):
			fmt.Fprintf(w, "slept %s\n", sleep)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s ready-after=%s\n", r.Proto, delay)
	})
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: ":" + port, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	log.Printf("probes: serving on :%s", port)
	log.Fatal(srv.ListenAndServe())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
