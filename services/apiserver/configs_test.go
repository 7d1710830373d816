package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
)

func decodeConfig(t *testing.T, b []byte) config.Config {
	t.Helper()
	var c config.Config
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return c
}

func storedConfig(t *testing.T, reg *registry.Registry, name string) (map[string]string, bool) {
	t.Helper()
	kv, err := reg.Store().Get(context.Background(), store.ConfigKey(name))
	if err != nil {
		return nil, false
	}
	var d config.Document
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		t.Fatal(err)
	}
	return d.Data, true
}

func TestConfigGetUnstored(t *testing.T) {
	srv, _ := newServer(t)
	code, b := do(t, srv, "GET", config.Path+"/autoscaler", "")
	if code != http.StatusOK {
		t.Fatalf("code %d: %s", code, b)
	}
	c := decodeConfig(t, b)
	if c.Kind != "Config" || c.Metadata.Name != "autoscaler" || c.Metadata.ResourceVersion != "0" || len(c.Data) != 0 {
		t.Fatalf("got %+v", c)
	}
}

func TestConfigUnknownName(t *testing.T) {
	srv, _ := newServer(t)
	for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
		code, b := do(t, srv, m, config.Path+"/autoscalar", `{"data":{}}`)
		st := decodeStatus(t, b)
		if code != http.StatusNotFound || st.Reason != "NotFound" || !strings.Contains(st.Message, "known: autoscaler, defaults,") {
			t.Errorf("%s: code %d, status %+v", m, code, st)
		}
	}
}

func TestConfigPatchSetsAndRemovesKeys(t *testing.T) {
	srv, reg := newServer(t)
	code, b := do(t, srv, "PATCH", config.Path+"/autoscaler", `{"data":{"stable-window":"90s","max-scale":"5"}}`)
	if code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	first := decodeConfig(t, b)
	if first.Data["stable-window"] != "90s" || first.Metadata.ResourceVersion == "0" {
		t.Fatalf("patch answer %+v", first)
	}
	code, b = do(t, srv, "PATCH", config.Path+"/autoscaler", `{"data":{"max-scale":null,"min-scale":"1"}}`)
	if code != http.StatusOK {
		t.Fatalf("second patch: %d %s", code, b)
	}
	data, _ := storedConfig(t, reg, "autoscaler")
	want := map[string]string{"stable-window": "90s", "min-scale": "1"}
	if len(data) != len(want) || data["stable-window"] != "90s" || data["min-scale"] != "1" {
		t.Fatalf("stored %v, want %v", data, want)
	}
	code, b = do(t, srv, "GET", config.Path+"/autoscaler", "")
	got := decodeConfig(t, b)
	if code != http.StatusOK || got.Data["min-scale"] != "1" || got.Metadata.ResourceVersion == first.Metadata.ResourceVersion {
		t.Fatalf("get: %d %+v", code, got)
	}
}

func TestConfigInvalidValueWritesNothing(t *testing.T) {
	srv, reg := newServer(t)
	if code, b := do(t, srv, "PATCH", config.Path+"/autoscaler", `{"data":{"stable-window":"90s"}}`); code != http.StatusOK {
		t.Fatalf("seed: %d %s", code, b)
	}
	cases := []struct {
		method, body, key string
	}{
		{"PATCH", `{"data":{"stable-window":"2s"}}`, "stable-window"},
		{"PATCH", `{"data":{"stabel-window":"60s"}}`, "stabel-window"},
		{"PATCH", `{"data":{"min-scale":"5","max-scale":"2"}}`, "min-scale"},
		{"PUT", `{"data":{"enable-scale-to-zero":"maybe"}}`, "enable-scale-to-zero"},
	}
	for _, tc := range cases {
		code, b := do(t, srv, tc.method, config.Path+"/autoscaler", tc.body)
		st := decodeStatus(t, b)
		if code != http.StatusUnprocessableEntity || st.Reason != "Invalid" || !strings.Contains(st.Message, tc.key) {
			t.Errorf("%s %s: code %d, status %+v; want 422 naming %q", tc.method, tc.body, code, st, tc.key)
		}
	}
	data, _ := storedConfig(t, reg, "autoscaler")
	if len(data) != 1 || data["stable-window"] != "90s" {
		t.Fatalf("stored after refused writes: %v", data)
	}
}

func TestConfigPutCAS(t *testing.T) {
	srv, reg := newServer(t)
	// "0" means: only if nothing is stored yet.
	code, b := do(t, srv, "PUT", config.Path+"/network", `{"metadata":{"resourceVersion":"0"},"data":{"default-external-scheme":"https"}}`)
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, b)
	}
	rv := decodeConfig(t, b).Metadata.ResourceVersion
	code, b = do(t, srv, "PUT", config.Path+"/network", `{"metadata":{"resourceVersion":"0"},"data":{}}`)
	if st := decodeStatus(t, b); code != http.StatusConflict || st.Reason != "Conflict" {
		t.Fatalf("second create-only put: %d %+v", code, st)
	}
	code, b = do(t, srv, "PUT", config.Path+"/network", `{"metadata":{"resourceVersion":"`+rv+`"},"data":{"http-protocol":"Redirected"}}`)
	if code != http.StatusOK {
		t.Fatalf("cas put: %d %s", code, b)
	}
	code, _ = do(t, srv, "PUT", config.Path+"/network", `{"metadata":{"resourceVersion":"`+rv+`"},"data":{}}`)
	if code != http.StatusConflict {
		t.Fatalf("stale put: %d", code)
	}
	code, _ = do(t, srv, "PATCH", config.Path+"/network", `{"metadata":{"resourceVersion":"`+rv+`"},"data":{"ingress-class":"x"}}`)
	if code != http.StatusConflict {
		t.Fatalf("stale patch: %d", code)
	}
	// PUT replaces: the scheme set first is gone.
	data, _ := storedConfig(t, reg, "network")
	if len(data) != 1 || data["http-protocol"] != "Redirected" {
		t.Fatalf("stored %v", data)
	}
	code, b = do(t, srv, "PUT", config.Path+"/network", `{"metadata":{"name":"domain"},"data":{}}`)
	if code != http.StatusBadRequest {
		t.Fatalf("name mismatch: %d %s", code, b)
	}
}

func TestConfigListAndDelete(t *testing.T) {
	srv, reg := newServer(t)
	do(t, srv, "PATCH", config.Path+"/gc", `{"data":{"min-non-active-revisions":"3"}}`)
	code, b := do(t, srv, "GET", config.Path, "")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, b)
	}
	var list config.ConfigList
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(config.Names()) {
		t.Fatalf("%d items, want %d", len(list.Items), len(config.Names()))
	}
	for _, it := range list.Items {
		if (it.Metadata.Name == "gc") != (it.Metadata.ResourceVersion != "0") {
			t.Errorf("item %+v", it)
		}
	}
	if code, b := do(t, srv, "DELETE", config.Path+"/gc", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if _, ok := storedConfig(t, reg, "gc"); ok {
		t.Fatal("gc still stored")
	}
}

func TestConfigRequiresToken(t *testing.T) {
	srv, _ := newServer(t)
	req, _ := http.NewRequest("PATCH", srv.URL+config.Path+"/gc", strings.NewReader(`{"data":{}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("code %d", resp.StatusCode)
	}
}

// Every write is defaulted and validated with the configs stored at that
// moment, so a change applies to the next request without a restart.
func TestConfigContextReadsStore(t *testing.T) {
	srv, reg := newServer(t)
	s := &server{st: reg.Store(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, err := s.configContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := config.FromContextOrDefaults(ctx).Defaults().ContainerConcurrency; got != 0 {
		t.Fatalf("default container-concurrency = %d", got)
	}
	if code, b := do(t, srv, "PATCH", config.Path+"/defaults", `{"data":{"container-concurrency":"7"}}`); code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	if code, b := do(t, srv, "PATCH", config.Path+"/features", `{"data":{"multi-container":"disabled"}}`); code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, b)
	}
	ctx, err = s.configContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap := config.FromContextOrDefaults(ctx)
	if snap.Defaults().ContainerConcurrency != 7 || snap.Features().Enabled(config.FeatureMultiContainer) {
		t.Fatalf("defaults %+v, features %+v", snap.Defaults(), snap.Features())
	}
}
