package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/registry"
)

// bookmarkInterval is how often a watch with allowWatchBookmarks=true gets
// a BOOKMARK while nothing else happens (a variable for tests).
var bookmarkInterval = 5 * time.Second

// initialEventsEnd marks the BOOKMARK after a watch's initial events
// (sendInitialEvents=true), as Kubernetes' watch cache does.
const initialEventsEnd = "k8s.io/initial-events-end"

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// bookmark is a BOOKMARK event's object: the kind with only
// metadata.resourceVersion (and the initial-events-end annotation).
type bookmark struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   bookmarkMeta `json:"metadata"`
}

type bookmarkMeta struct {
	ResourceVersion string            `json:"resourceVersion"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

// handleWatchNamed serves GET .../NAME?watch=true: a watch of the
// collection narrowed to the one name.
func (s *server) handleWatchNamed(w http.ResponseWriter, r *http.Request, a apiResource, res resource) {
	opts, err := parseListOptions(r)
	if err != nil {
		s.failFor(w, r, err, a, r.PathValue("name"))
		return
	}
	sel := fields.OneTermEqualSelector(fieldName, r.PathValue("name"))
	if opts.FieldSelector != nil && !opts.FieldSelector.Empty() {
		sel = fields.AndSelectors(sel, opts.FieldSelector)
	}
	opts.FieldSelector = sel
	s.serveWatch(w, r, a, res, opts)
}

// serveWatch streams newline-delimited WatchEvents as Kubernetes does:
// without resourceVersion (or "0", or with sendInitialEvents=true) the
// current objects first as ADDED, then every change after the revision
// they were read at; with resourceVersion=N every change after N. Selectors
// apply to events: an object that stops matching is sent as DELETED, one
// that starts matching as ADDED (the watch cache's rule). timeoutSeconds
// ends the stream; allowWatchBookmarks adds a BOOKMARK every
// bookmarkInterval and when the server ends the watch. A compacted
// resourceVersion ends it with an ERROR event carrying 410 Expired, which
// makes client-go's reflector list again.
func (s *server) serveWatch(w http.ResponseWriter, r *http.Request, a apiResource, res resource, opts *internalversion.ListOptions) {
	ctx, cancel := context.WithCancel(r.Context())
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 {
		ctx, cancel = context.WithTimeout(r.Context(), time.Duration(*opts.TimeoutSeconds)*time.Second)
	}
	defer cancel()
	ns := r.PathValue("ns")
	m := matcherFor(opts)
	tracked := !m.empty()
	// last holds, by key, the objects that matched when last seen, so a
	// change can be told from an object entering or leaving the selection.
	last := map[string]v1.Object{}
	sendInitial := opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	if opts.SendInitialEvents != nil {
		sendInitial = *opts.SendInitialEvents
	}
	var initial []v1.Object
	var rev int64 // the last revision the client has seen
	if sendInitial {
		items, at, err := res.list(ctx, ns, 0)
		if err != nil {
			s.failFor(w, r, err, a, "")
			return
		}
		rev = at
		for _, o := range items {
			if m.matches(o) {
				initial = append(initial, o)
				last[objectKey(o)] = o
			}
		}
	} else {
		n, err := parseRV(opts.ResourceVersion)
		if err != nil {
			s.failFor(w, r, err, a, "")
			return
		}
		rev = n
		if tracked {
			// What matched at N; a compacted N fails in the watch below.
			items, _, err := res.list(ctx, ns, n)
			if err != nil && !isExpired(err) && !errors.Is(err, errdefs.ErrInvalidArgument) {
				s.failFor(w, r, err, a, "")
				return
			}
			for _, o := range items {
				if m.matches(o) {
					last[objectKey(o)] = o
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(ev WatchEvent) bool {
		if err := enc.Encode(ev); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	sendBookmark := func(annotations map[string]string) bool {
		return send(WatchEvent{Type: "BOOKMARK", Object: bookmark{APIVersion: listAPIVersion(res), Kind: a.Kind,
			Metadata: bookmarkMeta{ResourceVersion: strconv.FormatInt(rev, 10), Annotations: annotations}}})
	}
	for _, o := range initial {
		if !send(WatchEvent{Type: string(registry.Added), Object: o}) {
			return
		}
	}
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents && opts.AllowWatchBookmarks {
		if !sendBookmark(map[string]string{initialEventsEnd: "true"}) {
			return
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	var tick <-chan time.Time
	if opts.AllowWatchBookmarks {
		t := time.NewTicker(bookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	// ended closes the stream when the server ends it (timeoutSeconds),
	// with a last BOOKMARK so the client resumes from where it was.
	ended := func() {
		if r.Context().Err() == nil && opts.AllowWatchBookmarks {
			sendBookmark(nil)
		}
	}
	events := res.watch(ctx, ns, rev+1)
	for {
		select {
		case <-tick:
			if !sendBookmark(nil) {
				return
			}
		case <-ctx.Done():
			ended()
			return
		case ev, ok := <-events:
			if !ok {
				ended()
				return
			}
			if ev.Err != nil {
				if ctx.Err() != nil || errors.Is(ev.Err, context.Canceled) {
					ended()
					return
				}
				err := ev.Err
				if isExpired(err) {
					err = errExpired(watchTooOld)
				}
				send(WatchEvent{Type: "ERROR", Object: errorBody(err, a)})
				return
			}
			if ev.Object == nil {
				continue
			}
			if ev.Revision > rev {
				rev = ev.Revision
			}
			typ, obj, ok := filterEvent(m, tracked, last, ev)
			if ok && !send(WatchEvent{Type: typ, Object: obj}) {
				return
			}
		}
	}
}

// filterEvent applies the selectors to one change, updating last (the
// objects that matched). It returns what to send, or ok=false for nothing.
func filterEvent(m matcher, tracked bool, last map[string]v1.Object, ev event) (string, v1.Object, bool) {
	if !tracked {
		return string(ev.Type), ev.Object, true
	}
	key := objectKey(ev.Object)
	prev, had := last[key]
	if ev.Type == registry.Deleted {
		delete(last, key)
		return string(registry.Deleted), ev.Object, had
	}
	now := m.matches(ev.Object)
	switch {
	case now && had:
		last[key] = ev.Object
		return string(registry.Modified), ev.Object, true
	case now:
		last[key] = ev.Object
		return string(registry.Added), ev.Object, true
	case had:
		// The object left the selection: the client sees its last matching
		// state deleted at this change's revision.
		delete(last, key)
		prev.Meta().ResourceVersion = ev.Object.Meta().ResourceVersion
		return string(registry.Deleted), prev, true
	}
	return "", nil, false
}
