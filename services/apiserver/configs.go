package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

// configPatch is a JSON merge patch (RFC 7386) of a config's data: a key
// with a string sets it, a key with null removes it.
type configPatch struct {
	Metadata *config.ConfigMeta         `json:"metadata,omitempty"`
	Data     map[string]json.RawMessage `json:"data"`
}

// patchRetries bounds how often a PATCH without a precondition is replayed
// when another writer changed the config underneath it.
const patchRetries = 5

func (s *server) registerConfigs(mux *http.ServeMux) {
	mux.Handle("GET "+config.Path, s.auth(s.handleConfigList))
	mux.Handle("GET "+config.Path+"/{name}", s.auth(s.handleConfigGet))
	mux.Handle("PUT "+config.Path+"/{name}", s.auth(s.handleConfigPut))
	mux.Handle("PATCH "+config.Path+"/{name}", s.auth(s.handleConfigPatch))
	mux.Handle("DELETE "+config.Path+"/{name}", s.auth(s.handleConfigDelete))
}

// knownConfig answers 404 naming the known configs when name is not one.
func knownConfig(name string) error {
	if config.DefaultData(name) == nil {
		_, err := config.Parse(name, nil) // carries the "known: ..." list
		return err
	}
	return nil
}

// readConfig returns the stored data of config name (nil when absent) and
// its mod revision (0 when absent).
func (s *server) readConfig(ctx context.Context, name string) (map[string]string, int64, error) {
	kv, err := s.st.Get(ctx, store.ConfigKey(name))
	if errdefs.IsNotFound(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var d config.Document
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		return nil, 0, fmt.Errorf("stored config %q is not a config document: %v", name, err)
	}
	return d.Data, kv.ModRevision, nil
}

func configObject(name string, data map[string]string, rev int64) config.Config {
	if data == nil {
		data = map[string]string{}
	}
	return config.Config{APIVersion: config.APIVersion, Kind: "Config",
		Metadata: config.ConfigMeta{Name: name, ResourceVersion: strconv.FormatInt(rev, 10)}, Data: data}
}

func (s *server) handleConfigList(w http.ResponseWriter, r *http.Request) {
	kvs, _, err := s.st.List(r.Context(), store.ConfigPrefix)
	if err != nil {
		s.fail(w, r, err, "Config", "")
		return
	}
	stored := map[string]config.Config{}
	for _, kv := range kvs {
		name := kv.Key[len(store.ConfigPrefix):]
		var d config.Document
		if json.Unmarshal(kv.Value, &d) == nil {
			stored[name] = configObject(name, d.Data, kv.ModRevision)
		}
	}
	list := config.ConfigList{APIVersion: config.APIVersion, Kind: "ConfigList", Items: []config.Config{}}
	for _, name := range config.Names() {
		c, ok := stored[name]
		if !ok {
			c = configObject(name, nil, 0)
		}
		list.Items = append(list.Items, c)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) handleConfigGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := knownConfig(name); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	data, rev, err := s.readConfig(r.Context(), name)
	if err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	writeJSON(w, http.StatusOK, configObject(name, data, rev))
}

// precondition parses a user-given resourceVersion: -1 when none.
func precondition(rv string) (int64, error) {
	if rv == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(fmt.Errorf("metadata.resourceVersion %q: %w", rv, errdefs.ErrInvalidArgument))
	}
	return n, nil
}

func configConflict(name string) error {
	return fmt.Errorf("Operation cannot be fulfilled on config %q: the config has been modified; please apply your changes to the latest version and try again: %w",
		name, errdefs.ErrConflict)
}

// writeConfig validates data as config name and stores it, compare-and-swap
// on rev (the stored mod revision, 0 for "absent"). Nothing is written when
// data is invalid.
func (s *server) writeConfig(ctx context.Context, name string, data map[string]string, rev int64) (int64, error) {
	if _, err := config.Parse(name, data); err != nil {
		return 0, err
	}
	if data == nil {
		data = map[string]string{}
	}
	b, err := json.Marshal(config.Document{Data: data})
	if err != nil {
		return 0, err
	}
	newRev, err := s.st.Put(ctx, store.ConfigKey(name), b, store.IfRevision(rev))
	if errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err) {
		return 0, configConflict(name)
	}
	return newRev, err
}

func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest(fmt.Errorf("read body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if len(body) > maxBody {
		return badRequest(fmt.Errorf("request body larger than %d bytes: %w", maxBody, errdefs.ErrInvalidArgument))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest(fmt.Errorf("decode body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	return nil
}

// handleConfigPut replaces a config's data. Without a resourceVersion it
// overwrites whatever is stored; with one it is a compare-and-swap.
func (s *server) handleConfigPut(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	if err := knownConfig(name); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	var in config.Config
	if err := readJSON(r, &in); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	if in.Metadata.Name != "" && in.Metadata.Name != name {
		s.fail(w, r, badRequest(fmt.Errorf("the name of the config (%q) does not match the name on the URL (%q): %w",
			in.Metadata.Name, name, errdefs.ErrInvalidArgument)), "Config", name)
		return
	}
	want, err := precondition(in.Metadata.ResourceVersion)
	if err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	if want < 0 {
		// Unconditional: replace whatever the current revision is.
		_, cur, err := s.readConfig(ctx, name)
		if err != nil {
			s.fail(w, r, err, "Config", name)
			return
		}
		want = cur
	}
	rev, err := s.writeConfig(ctx, name, in.Data, want)
	if err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	s.log.Info("config replaced", "name", name, "keys", len(in.Data), "resource_version", rev)
	writeJSON(w, http.StatusOK, configObject(name, in.Data, rev))
}

// handleConfigPatch merges keys into a config (null removes a key),
// replaying on a concurrent change unless the caller pinned a revision.
func (s *server) handleConfigPatch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	if err := knownConfig(name); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	var p configPatch
	if err := readJSON(r, &p); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	set := map[string]string{}
	var unset []string
	for k, raw := range p.Data {
		if string(raw) == "null" {
			unset = append(unset, k)
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			s.fail(w, r, badRequest(fmt.Errorf("data.%s: want a string or null: %w", k, errdefs.ErrInvalidArgument)), "Config", name)
			return
		}
		set[k] = v
	}
	pinned := int64(-1)
	if p.Metadata != nil {
		var err error
		if pinned, err = precondition(p.Metadata.ResourceVersion); err != nil {
			s.fail(w, r, err, "Config", name)
			return
		}
	}
	for attempt := 0; ; attempt++ {
		data, cur, err := s.readConfig(ctx, name)
		if err != nil {
			s.fail(w, r, err, "Config", name)
			return
		}
		if pinned >= 0 && pinned != cur {
			s.fail(w, r, configConflict(name), "Config", name)
			return
		}
		merged := map[string]string{}
		for k, v := range data {
			merged[k] = v
		}
		for k, v := range set {
			merged[k] = v
		}
		for _, k := range unset {
			delete(merged, k)
		}
		rev, err := s.writeConfig(ctx, name, merged, cur)
		if errdefs.IsConflict(err) && pinned < 0 && attempt < patchRetries {
			continue
		}
		if err != nil {
			s.fail(w, r, err, "Config", name)
			return
		}
		s.log.Info("config patched", "name", name, "set", len(set), "unset", len(unset), "resource_version", rev)
		writeJSON(w, http.StatusOK, configObject(name, merged, rev))
		return
	}
}

// handleConfigDelete removes the stored document: every key is back at its
// default. Deleting a config that is not stored succeeds.
func (s *server) handleConfigDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := knownConfig(name); err != nil {
		s.fail(w, r, err, "Config", name)
		return
	}
	if err := s.st.Delete(r.Context(), store.ConfigKey(name)); err != nil && !errdefs.IsNotFound(err) {
		s.fail(w, r, err, "Config", name)
		return
	}
	s.log.Info("config reset to defaults", "name", name)
	writeJSON(w, http.StatusOK, configObject(name, nil, 0))
}

// configContext returns ctx carrying the cluster configs as stored right
// now, for defaulting and validation. It reads the store on every write
// request instead of following a watch: API servers run active-active, and a
// `kiln config set features ...` answered by one replica must govern the
// very next create, whichever replica takes it. One range read per write is
// cheap next to the write itself. A stored document that no longer parses
// (written by an older kiln) counts as absent, as it does for the Watcher.
func (s *server) configContext(ctx context.Context) (context.Context, error) {
	kvs, _, err := s.st.List(ctx, store.ConfigPrefix)
	if err != nil {
		return ctx, fmt.Errorf("read cluster configs: %w", err)
	}
	docs := map[string]map[string]string{}
	for _, kv := range kvs {
		name := kv.Key[len(store.ConfigPrefix):]
		var d config.Document
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			continue
		}
		if _, err := config.Parse(name, d.Data); err != nil {
			if !errors.Is(err, errdefs.ErrNotFound) {
				s.log.Warn("ignoring invalid stored config", "name", name, "error", err)
			}
			continue
		}
		docs[name] = d.Data
	}
	snap, err := config.SnapshotFrom(docs)
	if err != nil {
		return ctx, err
	}
	return config.WithSnapshot(ctx, snap), nil
}
