package activator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/reporter"
	"github.com/kiln-serving/kiln/internal/store"
)

// Options tune the activator. The zero value is usable.
type Options struct {
	// Timeout bounds a request (waiting included) of a revision whose
	// timeoutSeconds is unknown. Optional, default 300s (Knative's default
	// revision timeout). A known revision's timeoutSeconds wins.
	Timeout time.Duration
	// MaxQueue bounds the requests waiting per revision. Optional,
	// default 1000.
	MaxQueue int
	// Transport forwards requests to queue-proxies. Optional: a transport
	// with generous keep-alive pools.
	Transport http.RoundTripper
	// Identity names this activator in its metrics ("activator/<id>").
	// Optional, default "activator".
	Identity string
	// Autoscaler follows the autoscaler leader, which gets this
	// activator's metrics and pokes. Optional: nil means no autoscaler
	// (requests for a revision at zero wait for someone else to scale it).
	Autoscaler reporter.Leaders
	// Advertise is host:port edges reach this activator at. Optional: when
	// set, Run registers it under activators/<Identity> on a lease, so the
	// xds server routes to it. Either way the activator follows
	// activators/ and takes 1/N of every instance's containerConcurrency
	// with N live activators (itself counted when unregistered).
	Advertise string
	// LeaseTTL is the registration lease's time to live. Optional,
	// default 10s.
	LeaseTTL time.Duration
}

// Activator buffers and forwards requests to revisions' ready instances.
type Activator struct {
	st    store.Store
	opts  Options
	log   *slog.Logger
	proxy *httputil.ReverseProxy
	rep   *reporter.Client // nil without an autoscaler

	mu    sync.Mutex
	revs  map[revKey]*revision
	peers *peers // where this activator stands among the live ones
	// served counts the requests this activator took per revision since
	// it started (GET /metrics); kept when a revision's entry goes.
	served map[revKey]int64
}

type revKey struct{ ns, name string }

func (k revKey) String() string { return k.ns + "/" + k.name }

// New returns an activator reading instances and revisions from st. Call
// Run to start following them.
func New(st store.Store, opts Options, log *slog.Logger) *Activator {
	if opts.Timeout <= 0 {
		opts.Timeout = 300 * time.Second
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 1000
	}
	if opts.Identity == "" {
		opts.Identity = "activator"
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.Transport == nil {
		opts.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
	}
	a := &Activator{st: st, opts: opts, log: log.With("component", "activator"), revs: map[revKey]*revision{},
		peers: &peers{n: 1}, served: map[revKey]int64{}}
	a.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			f := pr.In.Context().Value(forwardKey{}).(*forward)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = f.endpoint
			// The original Host stays: the app may route on it.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			// The queue-proxy counts this request as proxied, so the
			// autoscaler does not count it twice.
			pr.Out.Header.Set(meter.ProxyHeaderName, meter.ProxyHeaderValue)
		},
		Transport:     opts.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f := r.Context().Value(forwardKey{}).(*forward)
			if isDialError(err) && !f.body.wasRead() && r.Context().Err() == nil {
				// Nothing reached the instance: the caller tries again
				// (an instance just started or just stopping).
				f.retry = true
				f.err = err
				return
			}
			if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
				http.Error(w, "activator: request timed out", http.StatusGatewayTimeout)
				return
			}
			a.log.Warn("forward failed", "endpoint", f.endpoint, "error", err)
			http.Error(w, fmt.Sprintf("activator: error forwarding to instance %s: %v", f.endpoint, err), http.StatusBadGateway)
		},
	}
	if opts.Autoscaler != nil {
		a.rep = reporter.New("activator/"+opts.Identity, opts.Autoscaler, a.collectStats, reporter.DefaultPeriod, a.log)
	}
	return a
}

// forward is one attempt to send a request to one instance.
type forward struct {
	endpoint string
	body     *onceBody
	retry    bool
	err      error
}

type forwardKey struct{}

// Sources Run follows.
const (
	srcInstances = iota
	srcRevisions
	srcActivators
)

// Run follows instances/ and the registry's revisions (and, with an
// autoscaler, reports metrics) until ctx ends. It returns nil then.
func (a *Activator) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	feeds := make(chan store.Feed, 64)
	for src, prefix := range map[int]string{
		srcInstances:  store.InstancePrefix,
		srcRevisions:  store.RegistryListPrefix("serving.knative.dev", "revisions", ""),
		srcActivators: store.ActivatorsPrefix,
	} {
		wg.Go(func() { store.Follow(ctx, a.st, src, prefix, feeds, a.log) })
	}
	if a.rep != nil {
		wg.Go(func() { _ = a.rep.Run(ctx) })
	}
	if a.opts.Advertise != "" {
		wg.Go(func() { a.register(ctx) })
	}
	// instances and specs are owned by this goroutine; requests only see
	// what is published from them.
	instances := map[string]cluster.Instance{}
	specs := map[string]revSpec{}
	activators := map[string]cluster.Activator{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-feeds:
			switch f.Src {
			case srcRevisions:
				a.applyRevisions(f, specs)
			case srcActivators:
				a.applyActivators(f, activators)
			default:
				a.applyInstances(f, instances)
			}
		}
	}
}

// revSpec is what the activator keeps of a Revision.
type revSpec struct {
	key     revKey
	cc      int64
	timeout time.Duration
}

func (a *Activator) applyRevisions(f store.Feed, specs map[string]revSpec) {
	touched := map[revKey]bool{}
	if f.Reset {
		for _, s := range specs {
			touched[s.key] = true
		}
		clear(specs)
	}
	for _, key := range f.Dels {
		if s, ok := specs[key]; ok {
			touched[s.key] = true
			delete(specs, key)
		}
	}
	for _, kv := range f.Puts {
		var r v1.Revision
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			a.log.Warn("skipping undecodable revision", "key", kv.Key, "error", err)
			continue
		}
		s := revSpec{key: revKey{r.Metadata.Namespace, r.Metadata.Name}}
		if r.Spec.ContainerConcurrency != nil {
			s.cc = max(*r.Spec.ContainerConcurrency, 0)
		}
		if r.Spec.TimeoutSeconds != nil && *r.Spec.TimeoutSeconds > 0 {
			s.timeout = time.Duration(*r.Spec.TimeoutSeconds) * time.Second
		}
		specs[kv.Key] = s
		touched[s.key] = true
	}
	byKey := map[revKey]revSpec{}
	for _, s := range specs {
		if touched[s.key] {
			byKey[s.key] = s
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range touched {
		s, ok := byKey[k]
		r := a.revs[k]
		if r == nil {
			if !ok {
				continue
			}
			r = a.newRevision(k)
		}
		r.known, r.cc, r.timeout = ok, s.cc, s.timeout
		r.dispatch()
	}
}

func (a *Activator) applyInstances(f store.Feed, instances map[string]cluster.Instance) {
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
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range touched {
		r := a.revs[k]
		if r == nil {
			if len(eps[k]) == 0 {
				continue
			}
			r = a.newRevision(k)
		}
		r.setPods(eps[k])
		a.log.Debug("endpoints changed", "revision", k.String(), "ready", len(r.pods), "queued", len(r.queue))
	}
}

// newRevision adds an entry for k. Callers hold the lock.
func (a *Activator) newRevision(k revKey) *revision {
	r := &revision{key: k, meter: meter.NewMeter(time.Now()), peers: a.peers}
	a.revs[k] = r
	return r
}

var (
	errQueueFull = errors.New("activator queue full")
	errTimeout   = errors.New("timed out waiting for a ready instance")
)

// acquire takes a slot on an instance of r, waiting in r's queue when none
// is free. Errors: errQueueFull, errTimeout (ctx's deadline), or ctx's
// error. A nil error must be paired with a.release.
func (a *Activator) acquire(ctx context.Context, r *revision) (*pod, error) {
	a.mu.Lock()
	if len(r.queue) == 0 {
		if p := r.pick(); p != nil {
			p.inFlight++
			a.mu.Unlock()
			return p, nil
		}
	}
	if len(r.queue) >= a.opts.MaxQueue {
		a.mu.Unlock()
		return nil, errQueueFull
	}
	w := &waiter{granted: make(chan *pod, 1)}
	r.queue = append(r.queue, w)
	if len(r.pods) == 0 && !r.poking && a.rep != nil {
		r.poking = true
		go a.poke(r)
	}
	a.mu.Unlock()

	select {
	case p := <-w.granted:
		return p, nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		if !r.dequeue(w) {
			// Granted meanwhile: hand the slot on.
			r.release(<-w.granted)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errTimeout
		}
		return nil, ctx.Err()
	}
}

func (a *Activator) release(r *revision, p *pod) {
	a.mu.Lock()
	r.release(p)
	a.mu.Unlock()
}

// revisionFor returns k's entry, creating it for a revision not seen yet
// (its Revision may be on its way).
func (a *Activator) revisionFor(k revKey) (*revision, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.revs[k]
	if r == nil {
		r = a.newRevision(k)
	}
	r.idle = 0
	a.served[k]++
	timeout := r.timeout
	if timeout <= 0 {
		timeout = a.opts.Timeout
	}
	return r, timeout
}

// Handler serves /healthz and /metrics (for requests without revision
// headers) and forwards every request naming a revision.
func (a *Activator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ns, name := req.Header.Get(v1.NamespaceHeaderName), req.Header.Get(v1.RevisionHeaderName)
		if ns == "" && name == "" && req.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		if ns == "" && name == "" && req.URL.Path == "/metrics" {
			a.serveMetrics(w)
			return
		}
		if ns == "" || name == "" {
			http.Error(w, fmt.Sprintf("activator: request must carry the %s and %s headers naming its revision",
				v1.RevisionHeaderName, v1.NamespaceHeaderName), http.StatusBadRequest)
			return
		}
		k := revKey{ns, name}
		r, timeout := a.revisionFor(k)
		r.meter.In(time.Now(), false)
		defer func() { r.meter.Out(time.Now(), false) }()
		ctx, cancel := context.WithTimeout(req.Context(), timeout)
		defer cancel()

		body := &onceBody{rc: req.Body}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = body
		}
		for attempt := 0; ; attempt++ {
			p, err := a.acquire(ctx, r)
			switch {
			case err == nil:
			case errors.Is(err, errQueueFull):
				http.Error(w, fmt.Sprintf("activator queue full for revision %s (%d requests waiting)", k, a.opts.MaxQueue), http.StatusServiceUnavailable)
				return
			case errors.Is(err, errTimeout):
				http.Error(w, fmt.Sprintf("activator: no ready instance of revision %s after %s", k, timeout), http.StatusServiceUnavailable)
				return
			default:
				// The client gave up.
				http.Error(w, fmt.Sprintf("activator: request ended while waiting for a ready instance of revision %s: %v", k, err), http.StatusServiceUnavailable)
				return
			}
			f := &forward{endpoint: p.endpoint, body: body}
			a.proxy.ServeHTTP(w, req.WithContext(context.WithValue(ctx, forwardKey{}, f)))
			a.release(r, p)
			if !f.retry {
				return
			}
			// Back off a little: the instance record that says it is
			// gone (or the listener that says it is up) is on its way.
			backoff := min(time.Duration(1<<min(attempt, 8))*time.Millisecond, 100*time.Millisecond)
			a.log.Debug("instance refused the connection; retrying", "revision", k.String(), "endpoint", p.endpoint,
				"attempt", attempt+1, "error", f.err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				http.Error(w, fmt.Sprintf("activator: no instance of revision %s accepted the request within %s: %v", k, timeout, f.err), http.StatusServiceUnavailable)
				return
			}
		}
	})
}

// onceBody lets a request whose body was never read be sent again: the
// transport closes the body on errors, which must not end the client's.
type onceBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	read bool
}

func (b *onceBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return b.rc.Read(p)
}

// Close is a no-op: the server closes the real body when the handler ends.
func (b *onceBody) Close() error { return nil }

func (b *onceBody) wasRead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// isDialError reports whether err happened before a connection existed.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
