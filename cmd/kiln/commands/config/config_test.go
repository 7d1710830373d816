package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	kcli "github.com/kiln-serving/kiln/cmd/kiln/commands"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/config"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/services/apiserver"
)

const token = "t0ken"

type env struct {
	t   *testing.T
	url string
	st  store.Store
}

func newEnv(t *testing.T) *env {
	st := memstore.New()
	srv := httptest.NewServer(apiserver.New(registry.New(st), apiserver.Options{Token: token}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, st: st}
}

func (e *env) run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	full := append([]string{"kiln", "--server", e.url, "--token", token}, args...)
	code = kcli.Run(context.Background(), full, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (e *env) stored(name string) map[string]string {
	kv, err := e.st.Get(context.Background(), store.ConfigKey(name))
	if err != nil {
		return nil
	}
	var d struct{ Data map[string]string }
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		e.t.Fatal(err)
	}
	return d.Data
}

func TestParseAssignments(t *testing.T) {
	cases := []struct {
		args  []string
		set   map[string]string
		unset []string
		err   string
	}{
		{args: []string{"a=1", "b=x=y", "c-"}, set: map[string]string{"a": "1", "b": "x=y"}, unset: []string{"c"}},
		{args: []string{"a="}, set: map[string]string{"a": ""}},
		{args: []string{"a"}, err: `invalid argument "a"`},
		{args: []string{"=1"}, err: `invalid argument "=1"`},
		{args: []string{"-"}, err: `invalid argument "-"`},
		{args: []string{"a=1", "a-"}, err: `key "a" given more than once`},
	}
	for _, tc := range cases {
		set, unset, err := config.ParseAssignments(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(set, tc.set) || !reflect.DeepEqual(unset, tc.unset) {
			t.Errorf("%v: got %v %v %v", tc.args, set, unset, err)
		}
	}
}

func TestSetThenGet(t *testing.T) {
	e := newEnv(t)
	code, out, errOut := e.run("config", "set", "autoscaler", "stable-window=90s", "max-scale=3")
	if code != 0 || !strings.Contains(out, "Config 'autoscaler' updated: max-scale=3, stable-window=90s") {
		t.Fatalf("set: %d %q %q", code, out, errOut)
	}
	code, out, _ = e.run("config", "get", "autoscaler")
	if code != 0 {
		t.Fatalf("get: %d", code)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			rows[f[0]] = f[1:]
		}
	}
	if !reflect.DeepEqual(rows["stable-window"], []string{"90s", "set"}) ||
		!reflect.DeepEqual(rows["enable-scale-to-zero"], []string{"true", "default"}) ||
		!reflect.DeepEqual(rows["max-scale"], []string{"3", "set"}) {
		t.Fatalf("get output:\n%s", out)
	}

	// Remove one key: it is back at its default, the other stays.
	if code, out, errOut := e.run("config", "set", "autoscaler", "max-scale-"); code != 0 {
		t.Fatalf("unset: %d %q %q", code, out, errOut)
	}
	if got := e.stored("autoscaler"); !reflect.DeepEqual(got, map[string]string{"stable-window": "90s"}) {
		t.Fatalf("stored %v", got)
	}

	code, out, _ = e.run("config", "get", "autoscaler", "-o", "yaml")
	var v config.View
	if err := yaml.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("yaml: %d %v\n%s", code, err, out)
	}
	if v.Kind != "Config" || v.Metadata.Name != "autoscaler" || v.Data["stable-window"] != "90s" ||
		v.Defaults["stable-window"] != "" || v.Defaults["max-scale"] != "0" {
		t.Fatalf("view %+v", v)
	}
}

func TestSetInvalidNamesKeyAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	code, _, errOut := e.run("config", "set", "autoscaler", "stable-window=90s", "panic-window-percentage=0")
	if code == 0 || !strings.Contains(errOut, "panic-window-percentage") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if got := e.stored("autoscaler"); got != nil {
		t.Fatalf("stored %v after a refused set", got)
	}
	code, _, errOut = e.run("config", "set", "autoscalr", "stable-window=90s")
	if code == 0 || !strings.Contains(errOut, "known: autoscaler, defaults, deployment, domain, features, gc, network") {
		t.Fatalf("unknown name: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = e.run("config", "set", "autoscaler")
	if code == 0 || !strings.Contains(errOut, "requires a config name and at least one") {
		t.Fatalf("no keys: code %d, stderr %q", code, errOut)
	}
}

func TestListAndReset(t *testing.T) {
	e := newEnv(t)
	e.run("config", "set", "features", "kubernetes.podspec-init-containers=enabled")
	code, out, _ := e.run("config", "list")
	if code != 0 || !strings.Contains(out, "features") || !strings.Contains(out, "kubernetes.podspec-init-containers") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 7 {
		t.Fatalf("list has %d rows, want 7:\n%s", n, out)
	}
	if code, out, errOut := e.run("config", "reset", "features"); code != 0 || !strings.Contains(out, "reset to its defaults") {
		t.Fatalf("reset: %d %q %q", code, out, errOut)
	}
	if got := e.stored("features"); got != nil {
		t.Fatalf("stored after reset: %v", got)
	}
	code, out, _ = e.run("config", "get", "features")
	if code != 0 || !strings.Contains(out, "Stored:    no") {
		t.Fatalf("get after reset: %d\n%s", code, out)
	}
}
