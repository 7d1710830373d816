package activator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
)

// Options tune the activator. The zero value is usable.
type Options struct {
	// Timeout bounds how long a request waits for a ready instance.
	// Optional, default 300s (Knative's default revision timeout); the
	// request's own context may end it sooner.
	Timeout time.Duration
	// MaxQueue bounds the requests waiting per revision. Optional,
	// default 1000.
	MaxQueue int
	// Transport forwards requests to queue-proxies. Optional,
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Activator buffers and forwards requests to revisions' ready instances.
type Activator struct {
	st    store.Store
	opts  Options
	log   *slog.Logger
	proxy *httputil.ReverseProxy

	mu   sync.Mutex
	revs map[revKey]*revision
}

type revKey struct{ ns, name string }

func (k revKey) String() string { return k.ns + "/" + k.name }

// revision is what requests see of one revision. Guarded by Activator.mu.
type revision struct {
	endpoints []string // host:port of ready queue-proxies, sorted
	next      int      // round-robin cursor
	waiting   int
	// changed is closed (and replaced) whenever endpoints change, waking
	// every waiting request at once.
	changed chan struct{}
}

// New returns an activator reading instances from st. Call Run to start
// following instances/.
func New(st store.Store, opts Options, log *slog.Logger) *Activator {
	if opts.Timeout <= 0 {
		opts.Timeout = 300 * time.Second
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 1000
	}
	a := &Activator{st: st, opts: opts, log: log.With("component", "activator"), revs: map[revKey]*revision{}}
	a.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(endpointKey{}).(string)
			// The original Host stays: the app may route on it.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: opts.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ep, _ := r.Context().Value(endpointKey{}).(string)
			a.log.Warn("forward failed", "endpoint", ep, "error", err)
			http.Error(w, fmt.Sprintf("activator: error forwarding to instance %s: %v", ep, err), http.StatusBadGateway)
		},
	}
	return a
}

type endpointKey struct{}

// Run follows instances/ until ctx ends, keeping each revision's ready
// endpoints. It returns nil when ctx ends.
func (a *Activator) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	feeds := make(chan store.Feed, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		store.Follow(ctx, a.st, 0, store.InstancePrefix, feeds, a.log)
	}()
	// instances is owned by this goroutine; requests only see the
	// endpoints published from it.
	instances := map[string]cluster.Instance{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-feeds:
			touched := map[revKey]bool{}
			if f.Reset {
				for _, in := range instances {
					touched[revKey{in.Namespace, in.Revision}] = true
				}
				clear(instances)
			}
			for _, key := range f.Dels {
				if in, ok := instances[key]; ok {
					touched[revKey{in.Namespace, in.Revision}] = true
					delete(instances, key)
				}
			}
			for _, kv := range f.Puts {
				var in cluster.Instance
				if err := json.Unmarshal(kv.Value, &in); err != nil {
					a.log.Warn("skipping undecodable instance", "key", kv.Key, "error", err)
					continue
				}
				if old, ok := instances[kv.Key]; ok {
					touched[revKey{old.Namespace, old.Revision}] = true
				}
				instances[kv.Key] = in
				touched[revKey{in.Namespace, in.Revision}] = true
			}
			eps := map[revKey][]string{}
			for _, in := range instances {
				k := revKey{in.Namespace, in.Revision}
				if touched[k] && in.Ready && in.Endpoint != "" {
					eps[k] = append(eps[k], in.Endpoint)
				}
			}
			for k := range touched {
				a.publish(k, eps[k])
			}
		}
	}
}

// publish sets a revision's ready endpoints and wakes its waiters.
func (a *Activator) publish(k revKey, eps []string) {
	slices.Sort(eps)
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.revs[k]
	if r == nil {
		if len(eps) == 0 {
			return
		}
		r = &revision{changed: make(chan struct{})}
		a.revs[k] = r
	}
	if slices.Equal(r.endpoints, eps) {
		return
	}
	r.endpoints = eps
	close(r.changed)
	r.changed = make(chan struct{})
	if len(eps) == 0 && r.waiting == 0 {
		delete(a.revs, k)
	}
	a.log.Debug("endpoints changed", "revision", k.String(), "ready", len(eps))
}

var (
	errQueueFull = errors.New("activator queue full")
	errTimeout   = errors.New("timed out waiting for a ready instance")
)

// endpoint returns a ready endpoint of k, waiting for one when there is
// none. Errors: errQueueFull, errTimeout, or ctx's error.
func (a *Activator) endpoint(ctx context.Context, k revKey) (string, error) {
	var timeout <-chan time.Time
	a.mu.Lock()
	r := a.revs[k]
	if r == nil {
		r = &revision{changed: make(chan struct{})}
		a.revs[k] = r
	}
	if len(r.endpoints) == 0 {
		if r.waiting >= a.opts.MaxQueue {
			a.mu.Unlock()
			return "", errQueueFull
		}
		r.waiting++
		defer func() {
			a.mu.Lock()
			r.waiting--
			if r.waiting == 0 && len(r.endpoints) == 0 && a.revs[k] == r {
				delete(a.revs, k)
			}
			a.mu.Unlock()
		}()
		t := time.NewTimer(a.opts.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for len(r.endpoints) == 0 {
		changed := r.changed
		a.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			return "", errTimeout
		case <-ctx.Done():
			return "", ctx.Err()
		}
		a.mu.Lock()
	}
	ep := r.endpoints[r.next%len(r.endpoints)]
	r.next++
	a.mu.Unlock()
	return ep, nil
}

// Handler serves /healthz (for requests without revision headers) and
// forwards every request naming a revision.
func (a *Activator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.Header.Get(v1.NamespaceHeaderName), r.Header.Get(v1.RevisionHeaderName)
		if ns == "" && name == "" && r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		if ns == "" || name == "" {
			http.Error(w, fmt.Sprintf("activator: request must carry the %s and %s headers naming its revision",
				v1.RevisionHeaderName, v1.NamespaceHeaderName), http.StatusBadRequest)
			return
		}
		k := revKey{ns, name}
		ep, err := a.endpoint(r.Context(), k)
		switch {
		case err == nil:
		case errors.Is(err, errQueueFull):
			http.Error(w, fmt.Sprintf("activator queue full for revision %s (%d requests waiting)", k, a.opts.MaxQueue), http.StatusServiceUnavailable)
			return
		case errors.Is(err, errTimeout):
			http.Error(w, fmt.Sprintf("activator: no ready instance of revision %s after %s", k, a.opts.Timeout), http.StatusServiceUnavailable)
			return
		default:
			// The client gave up (or its deadline passed).
			http.Error(w, fmt.Sprintf("activator: request ended while waiting for a ready instance of revision %s: %v", k, err), http.StatusServiceUnavailable)
			return
		}
		a.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), endpointKey{}, ep)))
	})
}
