package apiserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kiln-serving/kiln/api/auth"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
)

// registerTokens serves kiln.dev/v1 tokens: create (the response is the
// only place the secret ever appears), list and delete (revoke). The
// authorizer lets only a cluster-admin reach them.
func (s *server) registerTokens(mux *http.ServeMux) {
	mux.Handle("GET "+auth.TokensPath, s.auth(s.handleTokenList))
	mux.Handle("POST "+auth.TokensPath, s.auth(s.handleTokenCreate))
	mux.Handle("DELETE "+auth.TokensPath+"/{name}", s.auth(s.handleTokenDelete))
}

const kindToken = "Token"

// generatedSubjectPrefix names the subject of a token created without one;
// such a subject exists only for its token, so revoking the token also
// removes its roles.
const generatedSubjectPrefix = "token-"

var namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (rec tokenRecord) wire() auth.Token {
	created := rec.Created
	return auth.Token{APIVersion: auth.APIVersion, Kind: kindToken,
		Metadata: auth.TokenMeta{Name: rec.ID, CreationTimestamp: &created},
		Spec:     auth.TokenSpec{Subject: rec.Subject, Namespace: rec.Namespace, Role: rec.Role},
		Status:   auth.TokenStatus{ExpirationTimestamp: rec.Expires}}
}

func invalidToken(format string, args ...any) error {
	return fmt.Errorf("Token is invalid: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

func (s *server) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		s.fail(w, r, badRequest(fmt.Errorf("read body: %v: %w", err, errdefs.ErrInvalidArgument)), kindToken, "")
		return
	}
	var in auth.Token
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		s.fail(w, r, badRequest(fmt.Errorf("decode Token: %v: %w", err, errdefs.ErrInvalidArgument)), kindToken, "")
		return
	}
	spec := in.Spec
	role, err := auth.ParseRole(string(spec.Role))
	if err != nil {
		s.fail(w, r, invalidToken("spec.role: %v", err), kindToken, "")
		return
	}
	switch {
	case role == auth.RoleClusterAdmin && spec.Namespace != "":
		s.fail(w, r, invalidToken("spec.namespace: cluster-admin is granted cluster-wide, not in a namespace"), kindToken, "")
		return
	case role != auth.RoleClusterAdmin && !namespaceRE.MatchString(spec.Namespace):
		s.fail(w, r, invalidToken("spec.namespace: %q: a namespace (a DNS label) is required for role %s", spec.Namespace, role), kindToken, "")
		return
	case spec.ExpirationSeconds < 0:
		s.fail(w, r, invalidToken("spec.expirationSeconds: must not be negative"), kindToken, "")
		return
	}
	if spec.Subject != "" {
		// The same rule as a certificate's identity name, so a subject can
		// use either credential.
		if err := (pki.Identity{Role: pki.RoleUser, Name: spec.Subject}).Validate(); err != nil {
			s.fail(w, r, invalidToken("spec.subject: %v", err), kindToken, "")
			return
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		s.fail(w, r, err, kindToken, "")
		return
	}
	secret := hex.EncodeToString(raw[:])
	hash := hashToken(secret)
	now := time.Now().UTC().Truncate(time.Second)
	rec := tokenRecord{ID: hash[:12], Subject: spec.Subject, Namespace: spec.Namespace, Role: role, Created: now}
	if rec.Subject == "" {
		rec.Subject = generatedSubjectPrefix + rec.ID
	}
	if spec.ExpirationSeconds > 0 {
		exp := now.Add(time.Duration(spec.ExpirationSeconds) * time.Second)
		rec.Expires = &exp
	}
	// Roles first: a token whose grant failed must not exist.
	if err := s.grant(r.Context(), rec.Subject, rec.Namespace, rec.Role); err != nil {
		s.fail(w, r, err, kindToken, "")
		return
	}
	val, _ := json.Marshal(rec)
	if _, err := s.st.Put(r.Context(), store.TokenKey(hash), val, store.IfRevision(0)); err != nil {
		s.fail(w, r, fmt.Errorf("store token: %w", err), kindToken, "")
		return
	}
	s.log.Info("token created", "id", rec.ID, "subject", rec.Subject, "namespace", rec.Namespace, "role", rec.Role)
	out := rec.wire()
	out.Status.Token = secret
	writeJSON(w, http.StatusCreated, out)
}

// listTokens returns every stored token record with its key.
func (s *server) listTokens(r *http.Request) ([]tokenRecord, []string, error) {
	kvs, _, err := s.st.List(r.Context(), store.TokensPrefix)
	if err != nil {
		return nil, nil, err
	}
	var recs []tokenRecord
	var keys []string
	for _, kv := range kvs {
		var rec tokenRecord
		if json.Unmarshal(kv.Value, &rec) != nil {
			continue
		}
		recs, keys = append(recs, rec), append(keys, kv.Key)
	}
	return recs, keys, nil
}

func (s *server) handleTokenList(w http.ResponseWriter, r *http.Request) {
	recs, _, err := s.listTokens(r)
	if err != nil {
		s.fail(w, r, err, kindToken, "")
		return
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].Created.Equal(recs[j].Created) {
			return recs[i].Created.Before(recs[j].Created)
		}
		return recs[i].ID < recs[j].ID
	})
	items := make([]auth.Token, 0, len(recs))
	for _, rec := range recs {
		items = append(items, rec.wire())
	}
	writeJSON(w, http.StatusOK, auth.TokenList{APIVersion: auth.APIVersion, Kind: "TokenList", Items: items})
}

// handleTokenDelete revokes a token by ID. A generated subject goes with
// its token; a named subject keeps its roles, which its other tokens or
// its client certificate still use.
func (s *server) handleTokenDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("name")
	recs, keys, err := s.listTokens(r)
	if err != nil {
		s.fail(w, r, err, kindToken, id)
		return
	}
	for i, rec := range recs {
		if rec.ID != id || !strings.HasPrefix(keys[i], store.TokensPrefix+id) {
			continue
		}
		if err := s.st.Delete(r.Context(), keys[i]); err != nil && !errdefs.IsNotFound(err) {
			s.fail(w, r, err, kindToken, id)
			return
		}
		if rec.Subject == generatedSubjectPrefix+rec.ID {
			if err := s.st.Delete(r.Context(), store.BindingKey(rec.Subject)); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				s.fail(w, r, err, kindToken, id)
				return
			}
		}
		s.log.Info("token revoked", "id", id, "subject", rec.Subject)
		writeJSON(w, http.StatusOK, successStatus(auth.Group, auth.ResourceTokens, id))
		return
	}
	s.fail(w, r, fmt.Errorf("tokens.%s %q not found: %w", auth.Group, id, errdefs.ErrNotFound), kindToken, id)
}
