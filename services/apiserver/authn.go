package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/auth"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
)

// BootstrapSubject is the user name of Options.Token, the cluster-admin
// token an installation starts with (kilnd's --token-file).
const BootstrapSubject = "admin"

// tokenRecord is the value of auth/tokens/<hash>. It never holds the
// token: whoever reads etcd cannot use what they read.
type tokenRecord struct {
	ID        string     `json:"id"`
	Subject   string     `json:"subject"`
	Namespace string     `json:"namespace,omitempty"`
	Role      auth.Role  `json:"role"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires,omitempty"`
}

// bindingRecord is the value of auth/bindings/<subject>: every role the
// subject holds, whichever credential (token or certificate) it presents.
type bindingRecord struct {
	ClusterRole auth.Role            `json:"clusterRole,omitempty"`
	Namespaces  map[string]auth.Role `json:"namespaces,omitempty"`
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func unauthenticated(why string) error {
	return fmt.Errorf("%s: %w", why, errdefs.ErrUnauthorized)
}

// authenticate names the caller: a verified client certificate of role
// user (its identity's name is the subject) wins, then a bearer token: the
// bootstrap token, or one whose hash is stored and has not expired.
func (s *server) authenticate(r *http.Request) (Subject, error) {
	ctx := r.Context()
	if id, err := pki.PeerIdentity(r.TLS); err == nil {
		if id.Role != pki.RoleUser || id.Name == "" {
			return Subject{}, unauthenticated(fmt.Sprintf("client certificate of %s is not a user certificate", id))
		}
		return s.subject(ctx, id.Name)
	} else if !errors.Is(err, pki.ErrNoPeerCertificate) {
		return Subject{}, unauthenticated(err.Error())
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return Subject{}, unauthenticated("missing or invalid bearer token")
	}
	if s.opts.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) == 1 {
		return Subject{Name: BootstrapSubject, ClusterRole: auth.RoleClusterAdmin}, nil
	}
	kv, err := s.st.Get(ctx, store.TokenKey(hashToken(tok)))
	if errdefs.IsNotFound(err) {
		return Subject{}, unauthenticated("missing or invalid bearer token")
	}
	if err != nil {
		return Subject{}, fmt.Errorf("read token: %w", err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return Subject{}, fmt.Errorf("stored token is not a token record: %v", err)
	}
	if rec.Expires != nil && !time.Now().Before(*rec.Expires) {
		return Subject{}, unauthenticated("missing or invalid bearer token")
	}
	return s.subject(ctx, rec.Subject)
}

// subject loads the roles bound to name; none is not an error (every
// request is then forbidden).
func (s *server) subject(ctx context.Context, name string) (Subject, error) {
	b, _, err := s.readBinding(ctx, name)
	if err != nil {
		return Subject{}, err
	}
	return Subject{Name: name, ClusterRole: b.ClusterRole, Roles: b.Namespaces}, nil
}

// readBinding returns name's roles and their mod revision (0: none stored).
func (s *server) readBinding(ctx context.Context, name string) (bindingRecord, int64, error) {
	kv, err := s.st.Get(ctx, store.BindingKey(name))
	if errdefs.IsNotFound(err) {
		return bindingRecord{}, 0, nil
	}
	if err != nil {
		return bindingRecord{}, 0, fmt.Errorf("read roles of %q: %w", name, err)
	}
	var b bindingRecord
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return bindingRecord{}, 0, fmt.Errorf("stored roles of %q are not a binding record: %v", name, err)
	}
	return b, kv.ModRevision, nil
}

// grant adds role in ns (cluster-wide for cluster-admin) to name's
// binding, never lowering a role already held there.
func (s *server) grant(ctx context.Context, name, ns string, role auth.Role) error {
	for attempt := 0; ; attempt++ {
		b, rev, err := s.readBinding(ctx, name)
		if err != nil {
			return err
		}
		if role == auth.RoleClusterAdmin {
			b.ClusterRole = role
		} else if !b.Namespaces[ns].Includes(role) {
			if b.Namespaces == nil {
				b.Namespaces = map[string]auth.Role{}
			}
			b.Namespaces[ns] = role
		}
		val, _ := json.Marshal(b)
		_, err = s.st.Put(ctx, store.BindingKey(name), val, store.IfRevision(rev))
		if (errdefs.IsConflict(err) || errors.Is(err, errdefs.ErrAlreadyExists)) && attempt < casRetries {
			continue
		}
		if err != nil {
			return fmt.Errorf("grant %s in %q to %q: %w", role, ns, name, err)
		}
		return nil
	}
}

// auth authenticates and authorizes every request before h sees it: 401
// for an unknown caller, 403 (Kubernetes' RBAC message) for a known one
// without the role. Insecure servers skip both.
func (s *server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Insecure {
			h(w, r)
			return
		}
		subj, err := s.authenticate(r)
		if err != nil {
			s.fail(w, r, err, "", "")
			return
		}
		a := requestAttributes(r)
		if err := Authorize(subj, a); err != nil {
			s.log.Info("request forbidden", "user", subj.Name, "verb", a.Verb, "group", a.Group, "resource", a.Resource, "namespace", a.Namespace, "name", a.Name)
			s.fail(w, r, err, "", "")
			return
		}
		h(w, r.WithContext(withSubject(r.Context(), subj)))
	})
}
