package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-serving/kiln/internal/shutdown"
	"k8s.io/apimachinery/pkg/util/validation"
)

// LogFollowInterval is how often a followed log is polled for more.
var LogFollowInterval = 250 * time.Millisecond

// logTailChunk bounds the reads a tail makes walking back through a log.
const logTailChunk = 64 << 10

// LogsHandler serves the node API the apiserver proxies `kubectl logs` to:
//
//	GET /logs/{instance}              the serving container's log
//	GET /logs/{instance}/{container}  a sidecar's log
//
// with the query parameters tailLines, limitBytes and follow=true (stream
// what the container writes until the client leaves or the instance's log
// is removed). It only reads STATE-DIR/logs; names are DNS labels, so no
// request reaches another file. Access control is the listener's (mTLS,
// apiserver only).
func LogsHandler(stateDir string) http.Handler {
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, r *http.Request) {
		inst, ctr := r.PathValue("instance"), r.PathValue("container")
		id := inst
		if ctr != "" {
			id = sidecarID(inst, ctr)
		}
		for _, n := range []string{inst, ctr} {
			if n != "" && len(validation.IsDNS1123Label(n)) > 0 {
				http.Error(w, fmt.Sprintf("name %q: not a DNS label", n), http.StatusBadRequest)
				return
			}
		}
		opts, err := parseLogOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		path := filepath.Join(stateDir, "logs", id+".log")
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			http.Error(w, fmt.Sprintf("no log for container %q of instance %q on this node", ctr, inst), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "text/plain")
		_ = copyLog(r.Context(), w, f, path, opts)
	}
	mux.HandleFunc("GET /logs/{instance}", serve)
	mux.HandleFunc("GET /logs/{instance}/{container}", serve)
	return mux
}

// LogOptions are what a log request may ask for.
type LogOptions struct {
	// TailLines, when >= 0, starts at that many lines before the end.
	TailLines int64
	// LimitBytes, when > 0, ends the answer after that many bytes.
	LimitBytes int64
	// Follow keeps streaming what is appended.
	Follow bool
}

func parseLogOptions(r *http.Request) (LogOptions, error) {
	q := r.URL.Query()
	o := LogOptions{TailLines: -1}
	var err error
	if v := q.Get("tailLines"); v != "" {
		if o.TailLines, err = strconv.ParseInt(v, 10, 64); err != nil || o.TailLines < 0 {
			return o, fmt.Errorf("tailLines %q: must be a non-negative integer", v)
		}
	}
	if v := q.Get("limitBytes"); v != "" {
		if o.LimitBytes, err = strconv.ParseInt(v, 10, 64); err != nil || o.LimitBytes < 1 {
			return o, fmt.Errorf("limitBytes %q: must be a positive integer", v)
		}
	}
	if v := q.Get("follow"); v != "" {
		if o.Follow, err = strconv.ParseBool(v); err != nil {
			return o, fmt.Errorf("follow %q: must be true or false", v)
		}
	}
	return o, nil
}

// copyLog writes f from where opts start it, then, following, what is
// appended until ctx ends, its server stops (internal/shutdown) or path
// is removed.
func copyLog(ctx context.Context, w io.Writer, f *os.File, path string, opts LogOptions) error {
	start := int64(0)
	if opts.TailLines >= 0 {
		var err error
		if start, err = tailOffset(f, opts.TailLines); err != nil {
			return err
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	var out io.Writer = w
	remaining := opts.LimitBytes
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	for {
		var src io.Reader = f
		if opts.LimitBytes > 0 {
			src = io.LimitReader(f, remaining)
		}
		n, err := io.Copy(out, src)
		if err != nil {
			return err
		}
		remaining -= n
		if !opts.Follow || (opts.LimitBytes > 0 && remaining <= 0) {
			return nil
		}
		flush()
		select {
		case <-ctx.Done():
			return nil
		case <-shutdown.Stopping(ctx):
			// The agent is stopping: the client follows again later.
			return nil
		case <-time.After(LogFollowInterval):
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
}

// tailOffset is the offset of the start of the last n lines of f (a
// final line without newline counts as one).
func tailOffset(f *os.File, n int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := fi.Size()
	if n == 0 {
		return end, nil
	}
	pos := end
	buf := make([]byte, logTailChunk)
	for pos > 0 {
		size := min(int64(len(buf)), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		chunk := buf[:size]
		for i := len(chunk) - 1; i >= 0; i-- {
			// A trailing newline ends the last line; it starts none.
			if chunk[i] != '\n' || pos+int64(i) == end-1 {
				continue
			}
			n--
			if n == 0 {
				return pos + int64(i) + 1, nil
			}
		}
	}
	return 0, nil
}
