// Command toolbox is a test image for the agent's pod features: it serves
// HTTP and reads, writes and fetches on request, or runs one step and exits.
//
//	toolbox serve            HTTP on :$PORT: / answers $RESPONSE,
//	                         /read?path=P the file's content (404 if absent),
//	                         /write?path=P&body=B writes the file,
//	                         /fetch?url=U the body of GET U (502 after 2s)
//	toolbox append PATH TEXT appends TEXT and a newline to PATH, exits 0
//	toolbox exit CODE        exits with CODE
//	toolbox swap PATH TARGET renames PATH aside and puts a symlink to TARGET
//	                         in its place (a subPath swap attack), exits 0
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("toolbox: want serve, append or exit")
	}
	switch os.Args[1] {
	case "serve":
		serve()
	case "append":
		f, err := os.OpenFile(os.Args[2], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, os.Args[3])
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			log.Fatalf("toolbox append: %v", err)
		}
	case "swap":
		if err := os.Rename(os.Args[2], os.Args[2]+".orig"); err != nil && !os.IsNotExist(err) {
			log.Fatalf("toolbox swap: %v", err)
		}
		if err := os.Symlink(os.Args[3], os.Args[2]); err != nil {
			log.Fatalf("toolbox swap: %v", err)
		}
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		os.Exit(code)
	default:
		log.Fatalf("toolbox: unknown mode %q", os.Args[1])
	}
}

func serve() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv("RESPONSE"))
	})
	http.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	http.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte(r.URL.Query().Get("body")), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		// A short timeout: a fetch the network drops must fail fast.
		client := &http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
