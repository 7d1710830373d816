// Command echoheaders answers every request with the kiln-internal and
// forwarding request headers it received, one "Name=value" per line, so the end-to-end tests
// can see what reaches a container. It listens on :$PORT (default 8080).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

var names = []string{"Knative-Serving-Revision", "Knative-Serving-Namespace", "K-Proxy-Request", "K-Network-Probe",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto"}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{
		Addr: ":" + port,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var b strings.Builder
			for _, n := range names {
				fmt.Fprintf(&b, "%s=%s\n", n, strings.Join(r.Header.Values(n), ","))
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(b.String()))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}
