package activator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/deadline"
	"github.com/kiln-serving/kiln/internal/forwarded"
	"github.com/kiln-serving/kiln/internal/meter"
	"github.com/kiln-serving/kiln/internal/timeout"
	"github.com/kiln-serving/kiln/internal/unsent"
	"google.golang.org/grpc"

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
	// LeaseTTL is the registration lease's time to live: a killed
	// activator stays registered (edges skip it at its first refused
	// connection) this long. Optional, default 5s, as a node's lease.
	LeaseTTL time.Duration
	// UpstreamTLS is the client config (mutual TLS, internal/mtls) for
	// queue-proxies. Optional: nil forwards plain HTTP.
	UpstreamTLS *tls.Config
	// AutoscalerCreds is the transport credential to the autoscaler.
	// Optional: nil means plain gRPC.
	AutoscalerCreds grpc.DialOption
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
	// synced is closed once the registry's revisions have been listed:
	// before that an unknown revision may only be unread, not absent.
	synced     chan struct{}
	syncedOnce sync.Once
	// pokes carries revisions whose requests wait without an instance to
	// Run, which pokes the autoscaler for them.
	pokes chan *revision
	// deregister is closed by Deregister; unregistered once Run holds no
	// registration any more (or never will).
	deregister     chan struct{}
	deregisterOnce sync.Once
	unregistered   chan struct{}
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
		opts.LeaseTTL = 5 * time.Second
	}
	if opts.Transport == nil {
		opts.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			TLSClientConfig:     opts.UpstreamTLS,
		}
	}
	scheme := "http"
	if opts.UpstreamTLS != nil {
		scheme = "https"
	}
	a := &Activator{st: st, opts: opts, log: log.With("component", "activator"), revs: map[revKey]*revision{},
		peers: &peers{n: 1}, served: map[revKey]int64{}, synced: make(chan struct{}), pokes: make(chan *revision, 256),
		deregister: make(chan struct{}), unregistered: make(chan struct{})}
	a.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			f := pr.In.Context().Value(forwardKey{}).(*forward)
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = f.endpoint
			// The original Host stays: the app may route on it.
			pr.Out.Host = pr.In.Host
			forwarded.Keep(pr)
			// The queue-proxy counts this request as proxied, so the
			// autoscaler does not count it twice.
			pr.Out.Header.Set(meter.ProxyHeaderName, meter.ProxyHeaderValue)
		},
		Transport:     opts.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f := r.Context().Value(forwardKey{}).(*forward)
			if unsent.Is(err) && !f.body.wasRead() && r.Context().Err() == nil {
				// Nothing reached the instance: the caller tries again
				// (an instance just started or just stopping).
				f.retry = true
				f.err = err
				return
			}
			if f.mayReplay && unsent.Replayable(r, err) && r.Context().Err() == nil {
				// The instance broke the connection before answering (it
				// died mid-request): a request of an idempotent method
				// goes once more, to whichever instance is free.
				f.retry, f.replayed = true, true
				f.err = err
				return
			}
			if r.Context().Err() != nil {
				// Timed out (the timeout handler answered) or the
				// client went away.
				return
			}
			a.log.Warn("forward failed", "endpoint", f.endpoint, "error", err)
			http.Error(w, fmt.Sprintf("activator: error forwarding to instance %s: %v", f.endpoint, err), http.StatusBadGateway)
		},
	}
	if opts.Autoscaler != nil {
		a.rep = reporter.New("activator/"+opts.Identity, opts.Autoscaler, a.collectStats, reporter.DefaultPeriod, opts.AutoscalerCreds, a.log)
	}
	return a
}

// forward is one attempt to send a request to one instance.
type forward struct {
	endpoint string
	body     *onceBody
	// mayReplay allows one more attempt after a broken connection (see
	// unsent.Replayable); replayed says this attempt used it.
	mayReplay, replayed bool
	retry               bool
	err                 error
}

type forwardKey struct{}

// maxReplays bounds the attempts one request gets after a broken
// connection.
const maxReplays = 1

// Run follows instances/, the registry's revisions and activators/ (and,
// with an autoscaler, reports metrics and pokes it) until ctx ends. It
// returns nil then, once every goroutine it started has stopped. With
// Advertise it registers this activator until Deregister or ctx end. Run
// is called once.
func (a *Activator) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	v := a.newView()
	g.Go(func() error { v.mirror.Run(ctx, a.st, a.log); return nil })
	if a.rep != nil {
		g.Go(func() error { return a.rep.Run(ctx) })
	}
	if a.opts.Advertise != "" {
		g.Go(func() error {
			defer close(a.unregistered)
			a.register(ctx)
			return nil
		})
	} else {
		close(a.unregistered)
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case f := <-v.mirror.Feeds():
				v.mirror.Apply(f)
				a.publish(v)
			case r := <-a.pokes:
				g.Go(func() error { a.poke(ctx, r); return nil })
			}
		}
	})
	return g.Wait()
}

// view is what Run's loop owns: the caches it follows and what changed in
// them since it last published to requests.
type view struct {
	instances  *store.Cache[cluster.Instance]
	specs      *store.Cache[revSpec]
	activators *store.Cache[cluster.Activator]
	mirror     *store.Mirror
	// Touched by the change callbacks, cleared by publish.
	pods, revs   map[revKey]bool
	peersChanged bool
}

func (a *Activator) newView() *view {
	v := &view{
		instances:  store.NewCache(store.InstancePrefix, store.JSON[cluster.Instance], a.log),
		specs:      store.NewCache(store.RevisionsPrefix, decodeRevSpec, a.log),
		activators: store.NewCache(store.ActivatorsPrefix, decodeActivator, a.log),
		pods:       map[revKey]bool{},
		revs:       map[revKey]bool{},
	}
	v.instances.OnChange(func(c store.Change[cluster.Instance]) {
		if c.HadOld {
			v.pods[revKey{c.Old.Namespace, c.Old.Revision}] = true
		}
		if !c.Deleted {
			v.pods[revKey{c.New.Namespace, c.New.Revision}] = true
		}
	})
	v.specs.OnChange(func(c store.Change[revSpec]) {
		if c.HadOld {
			v.revs[c.Old.key] = true
		}
		if !c.Deleted {
			v.revs[c.New.key] = true
		}
	})
	v.activators.OnChange(func(store.Change[cluster.Activator]) { v.peersChanged = true })
	v.mirror = store.NewMirror(v.instances, v.specs, v.activators)
	return v
}

// revSpec is what the activator keeps of a Revision.
type revSpec struct {
	key revKey
	cc  int64
	// limits.Total is 0 when the revision has no timeoutSeconds.
	limits timeout.Limits
}

func decodeRevSpec(kv store.KV) (revSpec, error) {
	r, err := store.JSON[v1.Revision](kv)
	if err != nil {
		return revSpec{}, err
	}
	s := revSpec{key: revKey{r.Metadata.Namespace, r.Metadata.Name}}
	if r.Spec.ContainerConcurrency != nil {
		s.cc = max(*r.Spec.ContainerConcurrency, 0)
	}
	seconds := func(v *int64) time.Duration {
		if v == nil || *v <= 0 {
			return 0
		}
		return time.Duration(*v) * time.Second
	}
	s.limits = timeout.Limits{
		Total:         seconds(r.Spec.TimeoutSeconds),
		ResponseStart: seconds(r.Spec.ResponseStartTimeoutSeconds),
		Idle:          seconds(r.Spec.IdleTimeoutSeconds),
	}
	return s, nil
}

// publish hands what changed in v to the revisions requests use: specs,
// ready endpoints and this activator's place among its peers.
func (a *Activator) publish(v *view) {
	specs := map[revKey]revSpec{}
	if len(v.revs) > 0 {
		v.specs.Range(func(_ string, s revSpec) bool {
			if v.revs[s.key] {
				specs[s.key] = s
			}
			return true
		})
	}
	eps := map[revKey][]string{}
	if len(v.pods) > 0 {
		v.instances.Range(func(_ string, in cluster.Instance) bool {
			k := revKey{in.Namespace, in.Revision}
			if v.pods[k] && in.Ready && in.Endpoint != "" {
				eps[k] = append(eps[k], in.Endpoint)
			}
			return true
		})
	}
	var p *peers
	if v.peersChanged {
		p = a.peersOf(v.activators)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range v.revs {
		s, ok := specs[k]
		r := a.revs[k]
		if r == nil {
			if !ok {
				continue
			}
			r = a.newRevision(k)
		}
		r.known, r.cc, r.limits = ok, s.cc, s.limits
		r.dispatch()
	}
	for k := range v.pods {
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
	if p != nil && *a.peers != *p {
		*a.peers = *p
		a.log.Info("activators changed", "live", p.n, "self", p.self)
		for _, r := range a.revs {
			r.dispatch()
		}
	}
	clear(v.revs)
	clear(v.pods)
	v.peersChanged = false
	if v.specs.Synced() {
		a.syncedOnce.Do(func() { close(a.synced) })
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
		// Run's loop starts the poke, so it ends with Run. A full
		// channel leaves poking false: the next request asks again.
		select {
		case a.pokes <- r:
			r.poking = true
		default:
		}
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

// revisionFor returns k's entry, or nil when the registry has no such
// Revision. An unknown name gets no entry (nor a metrics counter): the
// names come from request headers, and holding each one open would let
// anyone grow the activator's state without bound. It waits for the first
// listing of revisions, at most until ctx ends (synced false then).
func (a *Activator) revisionFor(ctx context.Context, k revKey) (r *revision, limits timeout.Limits, synced bool) {
	select {
	case <-a.synced:
	case <-ctx.Done():
		return nil, limits, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r = a.revs[k]
	if r == nil || !r.known {
		return nil, limits, true
	}
	r.idle = 0
	a.served[k]++
	limits = r.limits
	if limits.Total <= 0 {
		limits.Total = a.opts.Timeout
	}
	return r, limits, true
}

// Handler serves /healthz and /metrics (for requests without revision
// headers) and forwards every request naming a revision.
//
// A request is bounded by its revision's timeoutSeconds, waiting and
// forwarding included; Drop closes a connection whose body was not read to
// its end, so a slow client cannot hold it past that.
func (a *Activator) Handler() http.Handler {
	return deadline.Drop(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
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
		wait, cancelWait := context.WithTimeout(req.Context(), a.opts.Timeout)
		r, limits, synced := a.revisionFor(wait, k)
		cancelWait()
		if !synced {
			http.Error(w, "activator: revisions not loaded yet", http.StatusServiceUnavailable)
			return
		}
		if r == nil {
			// Knative's activator answers 404 for a revision its lister
			// does not have; routes only send known revisions here.
			http.Error(w, fmt.Sprintf("activator: revision %s not found", k), http.StatusNotFound)
			return
		}
		r.meter.In(time.Now(), false)
		defer func() { r.meter.Out(time.Now(), false) }()
		ctx, cancel := context.WithTimeout(req.Context(), limits.Total)
		defer cancel()

		body := &onceBody{rc: req.Body}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = body
		}
		replays := 0
		for attempt := 0; ; attempt++ {
			p, err := a.acquire(ctx, r)
			switch {
			case err == nil:
			case errors.Is(err, errQueueFull):
				http.Error(w, fmt.Sprintf("activator queue full for revision %s (%d requests waiting)", k, a.opts.MaxQueue), http.StatusServiceUnavailable)
				return
			case errors.Is(err, errTimeout):
				http.Error(w, fmt.Sprintf("activator: no ready instance of revision %s after %s", k, limits.Total), http.StatusServiceUnavailable)
				return
			default:
				// The client gave up.
				http.Error(w, fmt.Sprintf("activator: request ended while waiting for a ready instance of revision %s: %v", k, err), http.StatusServiceUnavailable)
				return
			}
			f := &forward{endpoint: p.endpoint, body: body, mayReplay: replays < maxReplays}
			// The forward gets what is left of the timeout under
			// Knative's timeout handler, so a response that started
			// in time ends cleanly rather than being cut.
			fl := limits
			dl, _ := ctx.Deadline()
			if fl.Total = time.Until(dl); fl.Total <= 0 {
				fl.Total = time.Nanosecond
			}
			timeout.Serve(w, req.WithContext(context.WithValue(req.Context(), forwardKey{}, f)), a.proxy, fl)
			a.release(r, p)
			if !f.retry {
				return
			}
			if f.replayed {
				replays++
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
				http.Error(w, fmt.Sprintf("activator: no instance of revision %s accepted the request within %s: %v", k, limits.Total, f.err), http.StatusServiceUnavailable)
				return
			}
		}
	}))
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
