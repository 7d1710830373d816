package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/deadline"
)

// bodyTimeout bounds how long a request body may take to arrive: API
// objects are a few KiB, so a client still sending after this is stalling.
// The server itself has no ReadTimeout, which would end watches.
const bodyTimeout = 30 * time.Second

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const (
	labelMessage     = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
	subdomainMessage = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

// guardInput refuses a request whose namespace or name in the path could
// not be a stored object's, before any handler turns them into a store
// key: an escaped "/" or ".." would otherwise let two namespace/name pairs
// name the same key. Namespaces and secret names are DNS-1123 labels,
// other names DNS-1123 subdomains (Knative's names are narrower still, and
// Validate checks those on write). It also bounds request bodies in size
// and time.
func guardInput(next http.Handler) http.Handler {
	return deadline.Body(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkPath(r.URL.EscapedPath()); err != nil {
			writeError(w, err, "", "")
			return
		}
		next.ServeHTTP(w, r)
	}), bodyTimeout, maxBody+1)
}

// checkPath checks the {ns} and {name} segments of .../namespaces/{ns}/{resource}/{name}.
func checkPath(escaped string) error {
	segs := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil || strings.Contains(v, "/") {
			return badRequest(fmt.Errorf("invalid path segment %q: %w", seg, errdefs.ErrInvalidArgument))
		}
		segs[i] = v
	}
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] != "namespaces" {
			continue
		}
		if err := checkLabel("namespace", segs[i+1]); err != nil {
			return err
		}
		if i+3 < len(segs) {
			name := segs[i+3]
			if segs[0] == "api" && segs[i+2] == "secrets" {
				return checkLabel("name", name)
			}
			if len(name) > 253 || !dns1123Subdomain.MatchString(name) {
				return badRequest(fmt.Errorf("invalid name %q: %s: %w", name, subdomainMessage, errdefs.ErrInvalidArgument))
			}
		}
		return nil
	}
	return nil
}

func checkLabel(what, v string) error {
	if len(v) > 63 || !dns1123Label.MatchString(v) {
		return badRequest(fmt.Errorf("invalid %s %q: %s: %w", what, v, labelMessage, errdefs.ErrInvalidArgument))
	}
	return nil
}

// checkResourceVersion refuses a resourceVersion that is not an etcd
// revision: it can never match, so it is a malformed request (400), not a
// conflict (409) the client would retry.
func checkResourceVersion(rv string) error {
	if rv == "" {
		return nil
	}
	if n, err := strconv.ParseInt(rv, 10, 64); err != nil || n < 0 {
		return badRequest(fmt.Errorf("metadata.resourceVersion %q: must be a non-negative integer: %w", rv, errdefs.ErrInvalidArgument))
	}
	return nil
}
