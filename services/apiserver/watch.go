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
	"github.com/kiln-serving/kiln/internal/shutdown"
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
	s.serveWatch(w, r, a, servingSource{res}, opts)
}

// watchItem is one object of any served kind as a watch filters and
// sends it.
type watchItem struct {
	obj    any    // the event's object
	key    string // namespace/name, the store's order
	labels map[string]string
	fields fields.Set      // the values field selectors match
	setRV  func(rv string) // sets obj's metadata.resourceVersion
}

// watchChange is one change a watchSource reports.
type watchChange struct {
	typ      registry.EventType
	item     watchItem
	revision int64 // the store revision of the change
	err      error
}

// watchSource is what serveWatch streams: the serving kinds (through their
// resource) and the core kinds (straight from their store prefix).
type watchSource interface {
	// snapshot lists ns ("" = all) at store revision rev (0 = now), with
	// the revision read at. Errors: errdefs.ErrExpired (compacted),
	// errdefs.ErrInvalidArgument (future).
	snapshot(ctx context.Context, ns string, rev int64) ([]watchItem, int64, error)
	// changes streams the changes of ns from revision fromRev; it is
	// closed when ctx ends, after an event with err when the watch fails.
	changes(ctx context.Context, ns string, fromRev int64) <-chan watchChange
	// apiVersion is the apiVersion of a BOOKMARK's object.
	apiVersion() string
}

// servingSource watches a serving kind.
type servingSource struct{ res resource }

// servingItem is a serving object as a watch sees it.
func servingItem(o v1.Object) watchItem {
	m := o.Meta()
	return watchItem{obj: o, key: objectKey(o), labels: m.Labels,
		fields: fields.Set{fieldName: m.Name, fieldNamespace: m.Namespace},
		setRV:  func(rv string) { o.Meta().ResourceVersion = rv }}
}

func (s servingSource) snapshot(ctx context.Context, ns string, rev int64) ([]watchItem, int64, error) {
	items, at, err := s.res.list(ctx, ns, rev)
	if err != nil {
		return nil, 0, err
	}
	out := make([]watchItem, len(items))
	for i, o := range items {
		out[i] = servingItem(o)
	}
	return out, at, nil
}

func (s servingSource) changes(ctx context.Context, ns string, fromRev int64) <-chan watchChange {
	in := s.res.watch(ctx, ns, fromRev)
	out := make(chan watchChange)
	go func() {
		defer close(out)
		for ev := range in {
			c := watchChange{typ: ev.Type, revision: ev.Revision, err: ev.Err}
			if ev.Object != nil {
				c.item = servingItem(ev.Object)
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (s servingSource) apiVersion() string { return listAPIVersion(s.res) }

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
func (s *server) serveWatch(w http.ResponseWriter, r *http.Request, a apiResource, src watchSource, opts *internalversion.ListOptions) {
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
	last := map[string]watchItem{}
	sendInitial := opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	if opts.SendInitialEvents != nil {
		sendInitial = *opts.SendInitialEvents
	}
	var initial []watchItem
	var rev int64 // the last revision the client has seen
	if sendInitial {
		items, at, err := src.snapshot(ctx, ns, 0)
		if err != nil {
			s.failFor(w, r, err, a, "")
			return
		}
		rev = at
		for _, o := range items {
			if m.matchesItem(o) {
				initial = append(initial, o)
				last[o.key] = o
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
			items, _, err := src.snapshot(ctx, ns, n)
			if err != nil && !isExpired(err) && !errors.Is(err, errdefs.ErrInvalidArgument) {
				s.failFor(w, r, err, a, "")
				return
			}
			for _, o := range items {
				if m.matchesItem(o) {
					last[o.key] = o
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
		return send(WatchEvent{Type: "BOOKMARK", Object: bookmark{APIVersion: src.apiVersion(), Kind: a.Kind,
			Metadata: bookmarkMeta{ResourceVersion: strconv.FormatInt(rev, 10), Annotations: annotations}}})
	}
	for _, o := range initial {
		if !send(WatchEvent{Type: string(registry.Added), Object: o.obj}) {
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
	events := src.changes(ctx, ns, rev+1)
	for {
		select {
		case <-tick:
			if !sendBookmark(nil) {
				return
			}
		case <-ctx.Done():
			ended()
			return
		case <-shutdown.Stopping(ctx):
			// This apiserver is stopping: the client resumes from the
			// last bookmark, on another one.
			ended()
			return
		case ev, ok := <-events:
			if !ok {
				ended()
				return
			}
			if ev.err != nil {
				if ctx.Err() != nil || errors.Is(ev.err, context.Canceled) {
					ended()
					return
				}
				err := ev.err
				if isExpired(err) {
					err = errExpired(watchTooOld)
				}
				send(WatchEvent{Type: "ERROR", Object: errorBody(err, a)})
				return
			}
			if ev.item.obj == nil {
				continue
			}
			if ev.revision > rev {
				rev = ev.revision
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
func filterEvent(m matcher, tracked bool, last map[string]watchItem, ev watchChange) (string, any, bool) {
	if !tracked {
		return string(ev.typ), ev.item.obj, true
	}
	key := ev.item.key
	prev, had := last[key]
	if ev.typ == registry.Deleted {
		delete(last, key)
		return string(registry.Deleted), ev.item.obj, had
	}
	now := m.matchesItem(ev.item)
	switch {
	case now && had:
		last[key] = ev.item
		return string(registry.Modified), ev.item.obj, true
	case now:
		last[key] = ev.item
		return string(registry.Added), ev.item.obj, true
	case had:
		// The object left the selection: the client sees its last matching
		// state deleted at this change's revision.
		delete(last, key)
		prev.setRV(strconv.FormatInt(ev.revision, 10))
		return string(registry.Deleted), prev.obj, true
	}
	return "", nil, false
}
