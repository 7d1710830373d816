package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/unsent"
)

// Names of the global flags the root command declares.
const (
	FlagServer    = "server"
	FlagToken     = "token"
	FlagTokenFile = "token-file"
	FlagNamespace = "namespace"
	// FlagCAFile names the CA that signs the API's certificate.
	FlagCAFile = "certificate-authority"
	// FlagClientCert and FlagClientKey present a client certificate.
	FlagClientCert = "client-certificate"
	FlagClientKey  = "client-key"
)

// DefaultServer is the apiserver address kilnd dev listens on.
const DefaultServer = "https://127.0.0.1:7070"

// devCAFile is the CA `kilnd dev` serves its API with.
const devCAFile = "/var/lib/kiln/dev/pki/ca.crt"

// DefaultCAFile is ~/.kiln/ca.crt when it exists, else the dev CA when it
// exists, else "" (the system's roots).
func DefaultCAFile() string {
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kiln", "ca.crt")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if _, err := os.Stat(devCAFile); err == nil {
		return devCAFile
	}
	return ""
}

// DefaultTokenFile is ~/.kiln/token when it exists, else the token
// `kilnd dev` writes.
func DefaultTokenFile() string {
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kiln", "token")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/var/lib/kiln/dev/token"
}

// Client talks to the apiservers of one cluster. The zero value is not
// usable; use New.
type Client struct {
	bases []string
	// cur is the index into bases of the server that last answered: the
	// next request goes there first.
	cur   atomic.Int32
	token string
	http  *http.Client
}

// New returns a client for server (e.g. http://127.0.0.1:7070), or for
// several apiservers of one cluster separated by commas, sending token as
// a bearer token when non-empty. A request that cannot reach a server is
// sent to the next one (see do).
func New(server, token string) *Client {
	return &Client{bases: Servers(server), token: token, http: &http.Client{}}
}

// Servers splits a --server value (URLs separated by commas) into its
// URLs, without trailing slashes or empty entries.
func Servers(server string) []string {
	var out []string
	for _, s := range strings.Split(server, ",") {
		if s = strings.TrimRight(strings.TrimSpace(s), "/"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// CheckServers refuses a --server value that is not a list of http or
// https URLs with a host, naming the bad entry.
func CheckServers(server string) error {
	list := Servers(server)
	if len(list) == 0 {
		return fmt.Errorf("--%s: no API server URL given", FlagServer)
	}
	for _, s := range list {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--%s: %q is not an http:// or https:// URL of an API server", FlagServer, s)
		}
	}
	return nil
}

// WithTLS makes c speak HTTPS with cfg (trusted CAs, client certificate).
func (c *Client) WithTLS(cfg *tls.Config) *Client {
	c.http = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg}}
	return c
}

// TLSConfig builds the client's TLS configuration: caFile (optional; the
// system's roots when empty) is trusted for the server's certificate, and
// certFile/keyFile (both or neither) are presented as the client's.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read certificate authority: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("certificate authority %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("--%s and --%s go together", FlagClientCert, FlagClientKey)
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// FromContext builds a client from the global flags. An explicit
// --token-file that cannot be read is an error; the default one may be
// absent (the server then answers Unauthorized).
func FromContext(c *cli.Context) (*Client, error) {
	token, err := Token(c)
	if err != nil {
		return nil, err
	}
	if err := CheckServers(c.String(FlagServer)); err != nil {
		return nil, err
	}
	cl := New(c.String(FlagServer), token)
	if strings.Contains(c.String(FlagServer), "https:") {
		cfg, err := TLSConfig(c.String(FlagCAFile), c.String(FlagClientCert), c.String(FlagClientKey))
		if err != nil {
			return nil, err
		}
		cl.WithTLS(cfg)
	}
	return cl, nil
}

// Token is the bearer token the global flags name: --token, else the
// contents of --token-file ("" when the default file is absent).
func Token(c *cli.Context) (string, error) {
	if token := c.String(FlagToken); token != "" {
		return token, nil
	}
	b, err := os.ReadFile(c.String(FlagTokenFile))
	switch {
	case err == nil:
		return strings.TrimSpace(string(b)), nil
	case c.IsSet(FlagTokenFile):
		return "", fmt.Errorf("read token file: %w", err)
	}
	return "", nil
}

// Namespace returns the --namespace flag.
func Namespace(c *cli.Context) string { return c.String(FlagNamespace) }

// APIError is a failed request, carrying the server's Status.
type APIError struct {
	Code    int
	Reason  string
	Message string
	Causes  []v1.Cause
}

// Error prints the server's message, then any cause whose field the message
// does not already name.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("%s (HTTP %d)", e.Reason, e.Code)
	}
	for _, c := range e.Causes {
		if c.Field != "" && !strings.Contains(msg, c.Field) {
			msg += "\n  " + c.Field + ": " + c.Message
		}
	}
	return msg
}

// Unwrap maps the Status back to an errdefs sentinel.
func (e *APIError) Unwrap() error {
	switch e.Reason {
	case "AlreadyExists":
		return errdefs.ErrAlreadyExists
	case "Conflict":
		return errdefs.ErrConflict
	case "NotFound":
		return errdefs.ErrNotFound
	case "Invalid", "BadRequest":
		return errdefs.ErrInvalidArgument
	case "Unauthorized", "Forbidden":
		return errdefs.ErrUnauthorized
	}
	return errdefs.FromHTTP(e.Code)
}

func (c *Client) path(resource, ns, name string) string {
	p := "/apis/" + v1.APIVersion
	if ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	p += "/" + resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	// Try the server that answered last, then the others in order. A
	// request moves on only when it never reached a server (the dial
	// failed), or when it reads (GET) and the connection broke: a write
	// that may have landed is never sent twice.
	start := int(c.cur.Load())
	var errs []string
	var lastErr error
	for i := range c.bases {
		idx := (start + i) % len(c.bases)
		resp, err := c.send(ctx, c.bases[idx], method, path, query, payload)
		if err == nil {
			c.cur.Store(int32(idx))
			if resp.StatusCode >= 300 {
				defer resp.Body.Close()
				return nil, decodeError(resp)
			}
			return resp, nil
		}
		lastErr = err
		errs = append(errs, fmt.Sprintf("%s: %v", c.bases[idx], err))
		if ctx.Err() != nil || !(unsent.Is(err) || method == http.MethodGet) {
			break
		}
	}
	hint := ""
	var unknownCA x509.UnknownAuthorityError
	if errors.As(lastErr, &unknownCA) {
		hint = fmt.Sprintf(" (trust the CA that signed it with --%s or KILN_CA_FILE)", FlagCAFile)
	}
	what := "the kiln API server at " + strings.Join(errs, "")
	if len(c.bases) > 1 {
		what = "any kiln API server (" + strings.Join(errs, "; ") + ")"
	}
	return nil, fmt.Errorf("cannot reach %s%s: %w", what, hint, errdefs.ErrUnavailable)
}

// send makes one attempt at base.
func (c *Client) send(ctx context.Context, base, method, path string, query url.Values, payload []byte) (*http.Response, error) {
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st struct {
		Kind, Reason, Message string
		Code                  int
		Details               *struct{ Causes []v1.Cause }
	}
	e := &APIError{Code: resp.StatusCode}
	if json.Unmarshal(b, &st) == nil && st.Kind == "Status" {
		e.Reason, e.Message = st.Reason, st.Message
		if st.Details != nil {
			e.Causes = st.Details.Causes
		}
	} else {
		e.Message = strings.TrimSpace(string(b))
		e.Reason = http.StatusText(resp.StatusCode)
	}
	return e
}

func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func dry(dryRun bool) url.Values {
	if dryRun {
		return url.Values{"dryRun": {"All"}}
	}
	return nil
}

// Get reads one object into out. Errors wrap errdefs.ErrNotFound etc.
func (c *Client) Get(ctx context.Context, resource, ns, name string, out any) error {
	return c.call(ctx, http.MethodGet, c.path(resource, ns, name), nil, nil, out)
}

// List reads every object of resource in ns ("" = all) into items (a
// pointer to a slice) and returns the list's resourceVersion.
func (c *Client) List(ctx context.Context, resource, ns string, items any) (string, error) {
	var l struct {
		Metadata struct{ ResourceVersion string }
		Items    json.RawMessage
	}
	if err := c.call(ctx, http.MethodGet, c.path(resource, ns, ""), nil, nil, &l); err != nil {
		return "", err
	}
	if err := json.Unmarshal(l.Items, items); err != nil {
		return "", fmt.Errorf("decode list: %w", err)
	}
	return l.Metadata.ResourceVersion, nil
}

// Create posts obj; the server's defaulted copy is decoded into out.
func (c *Client) Create(ctx context.Context, resource, ns string, obj any, dryRun bool, out any) error {
	return c.call(ctx, http.MethodPost, c.path(resource, ns, ""), dry(dryRun), obj, out)
}

// Update puts obj; a stale metadata.resourceVersion fails with ErrConflict.
func (c *Client) Update(ctx context.Context, resource, ns, name string, obj any, dryRun bool, out any) error {
	return c.call(ctx, http.MethodPut, c.path(resource, ns, name), dry(dryRun), obj, out)
}

// Delete removes one object.
func (c *Client) Delete(ctx context.Context, resource, ns, name string) error {
	return c.call(ctx, http.MethodDelete, c.path(resource, ns, name), nil, nil, nil)
}

// Event is one watch event; Object is the raw JSON of the object.
type Event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// Watcher reads a watch stream. Close it when done.
type Watcher struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Watch streams changes to resource in ns after resourceVersion (name
// non-empty: only that object). With resourceVersion "" the stream starts
// with the current objects as ADDED.
func (c *Client) Watch(ctx context.Context, resource, ns, name, resourceVersion string) (*Watcher, error) {
	q := url.Values{"watch": {"true"}}
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	resp, err := c.do(ctx, http.MethodGet, c.path(resource, ns, name), q, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	return &Watcher{body: resp.Body, sc: sc}, nil
}

// Next blocks for the next event. An ERROR event is returned as an error;
// io.EOF means the server ended the stream.
func (w *Watcher) Next() (Event, error) {
	if !w.sc.Scan() {
		if err := w.sc.Err(); err != nil {
			return Event{}, err
		}
		return Event{}, io.EOF
	}
	var ev Event
	if err := json.Unmarshal(w.sc.Bytes(), &ev); err != nil {
		return Event{}, fmt.Errorf("decode watch event: %w", err)
	}
	if ev.Type == "ERROR" {
		var st APIError
		_ = json.Unmarshal(ev.Object, &st)
		return Event{}, errors.Join(errors.New("watch failed"), &st)
	}
	return ev, nil
}

// Close ends the stream.
func (w *Watcher) Close() error { return w.body.Close() }
