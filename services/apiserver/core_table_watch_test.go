package apiserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

// TestCoreTables checks the Table form of the core kinds: kubectl's
// columns (as a kube-apiserver v1.37 answers them) and one row per object.
func TestCoreTables(t *testing.T) {
	srv, _ := newServer(t)
	if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets",
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"type":"Opaque","stringData":{"user":"u","password":"hunter2"}}`); code != http.StatusCreated {
		t.Fatalf("create secret: %d %s", code, b)
	}
	for _, tc := range []struct {
		path    string
		columns []string
		row     []any // the first row's cells but the last (AGE)
		rows    int
	}{
		{"/namespaces", []string{"Name", "Status", "Age"}, []any{"default", "Active"}, 2},
		{"/namespaces/default", []string{"Name", "Status", "Age"}, []any{"default", "Active"}, 1},
		{"/namespaces/default/secrets", []string{"Name", "Type", "Data", "Age"}, []any{"db", "Opaque", float64(2)}, 1},
		{"/namespaces/default/secrets/db", []string{"Name", "Type", "Data", "Age"}, []any{"db", "Opaque", float64(2)}, 1},
		{"/namespaces/knative-serving/configmaps/config-autoscaler", []string{"Name", "Data", "Age"}, []any{"config-autoscaler", float64(0)}, 1},
		{"/namespaces/default/serviceaccounts", []string{"Name", "Age"}, []any{"default"}, 1},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, b := send(t, srv, srv.URL, http.MethodGet, CorePath+tc.path, "", "Accept", tableAccept)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, b)
			}
			var tab k8smeta.Table
			if err := json.Unmarshal(b, &tab); err != nil || tab.Kind != "Table" || tab.APIVersion != "meta.k8s.io/v1" {
				t.Fatalf("not a Table: %s (%v)", b, err)
			}
			var cols []string
			for _, c := range tab.ColumnDefinitions {
				cols = append(cols, c.Name)
				if c.Description == "" {
					t.Errorf("column %s has no description", c.Name)
				}
			}
			if strings.Join(cols, ",") != strings.Join(tc.columns, ",") {
				t.Fatalf("columns %v, want %v", cols, tc.columns)
			}
			// A built-in namespace without a record has no resourceVersion.
			if len(tab.Rows) != tc.rows || (tab.ResourceVersion == "" && tc.path != "/namespaces/default") {
				t.Fatalf("%d rows (want %d), resourceVersion %q: %s", len(tab.Rows), tc.rows, tab.ResourceVersion, b)
			}
			cells := tab.Rows[0].Cells
			if len(cells) != len(tc.columns) {
				t.Fatalf("cells %v", cells)
			}
			for i, want := range tc.row {
				if cells[i] != want {
					t.Errorf("cell %s = %#v, want %#v", tc.columns[i], cells[i], want)
				}
			}
			if age, _ := cells[len(cells)-1].(string); age == "" {
				t.Errorf("age cell %#v", cells[len(cells)-1])
			}
		})
	}
}

// nextEvent waits for the watch's next event.
func nextEvent(t *testing.T, w <-chan map[string]any) (string, map[string]any) {
	t.Helper()
	select {
	case ev, ok := <-w:
		if !ok {
			t.Fatal("watch ended")
		}
		obj, _ := ev["object"].(map[string]any)
		return ev["type"].(string), obj
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return "", nil
}

func objName(obj map[string]any) string {
	m, _ := obj["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// TestCoreWatches checks ?watch=true on namespaces, secrets and
// configmaps: initial events, changes from the store, selectors, and no
// key material in secret events.
func TestCoreWatches(t *testing.T) {
	srv, _ := newServer(t)

	t.Run("namespaces", func(t *testing.T) {
		w := watchLines(t, srv.URL, CorePath+"/namespaces?watch=true&labelSelector=team%3Da")
		if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces", `{"metadata":{"name":"other"}}`); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces", `{"metadata":{"name":"team-a","labels":{"team":"a"}}}`); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		typ, obj := nextEvent(t, w)
		if typ != "ADDED" || objName(obj) != "team-a" || obj["kind"] != "Namespace" || obj["apiVersion"] != "v1" {
			t.Fatalf("event %s %v", typ, obj)
		}
		if code, b := do(t, srv, http.MethodDelete, CorePath+"/namespaces/team-a", ""); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, b)
		}
		typ, obj = nextEvent(t, w)
		st, _ := obj["status"].(map[string]any)
		if typ != "MODIFIED" || objName(obj) != "team-a" || st["phase"] != "Terminating" {
			t.Fatalf("event %s %v", typ, obj)
		}
	})

	t.Run("namespaces initial events", func(t *testing.T) {
		w := watchLines(t, srv.URL, CorePath+"/namespaces?watch=true&fieldSelector=metadata.name%3Ddefault&timeoutSeconds=1")
		typ, obj := nextEvent(t, w)
		if typ != "ADDED" || objName(obj) != "default" {
			t.Fatalf("event %s %v", typ, obj)
		}
	})

	t.Run("secrets", func(t *testing.T) {
		w := watchLines(t, srv.URL, CorePath+"/namespaces/default/secrets?watch=true&allowWatchBookmarks=true")
		if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets",
			`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"type":"Opaque","stringData":{"password":"hunter2"}}`); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		typ, obj := nextEvent(t, w)
		raw, _ := json.Marshal(obj)
		if typ != "ADDED" || objName(obj) != "db" || obj["kind"] != "Secret" || obj["type"] != "Opaque" ||
			strings.Contains(string(raw), mustJSON([]byte("hunter2"))) || strings.Contains(string(raw), "hunter2") {
			t.Fatalf("event %s %s", typ, raw)
		}
		if code, b := do(t, srv, http.MethodDelete, CorePath+"/namespaces/default/secrets/db", ""); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, b)
		}
		if typ, obj := nextEvent(t, w); typ != "DELETED" || objName(obj) != "db" {
			t.Fatalf("event %s %v", typ, obj)
		}
	})

	t.Run("one secret", func(t *testing.T) {
		w := watchLines(t, srv.URL, CorePath+"/namespaces/default/secrets/two?watch=true")
		for _, n := range []string{"one", "two"} {
			if code, b := do(t, srv, http.MethodPost, CorePath+"/namespaces/default/secrets",
				`{"metadata":{"name":"`+n+`"},"type":"Opaque","stringData":{"k":"v"}}`); code != http.StatusCreated {
				t.Fatalf("create: %d %s", code, b)
			}
		}
		if typ, obj := nextEvent(t, w); typ != "ADDED" || objName(obj) != "two" {
			t.Fatalf("event %s %v", typ, obj)
		}
	})

	t.Run("configmaps", func(t *testing.T) {
		w := watchLines(t, srv.URL, CorePath+"/namespaces/knative-serving/configmaps?watch=true&fieldSelector=metadata.name%3Dconfig-autoscaler")
		typ, obj := nextEvent(t, w)
		if typ != "ADDED" || objName(obj) != "config-autoscaler" {
			t.Fatalf("initial event %s %v", typ, obj)
		}
		if code, b := doCT(t, srv, http.MethodPatch, autoscalerCM, "application/merge-patch+json", `{"data":{"stable-window":"90s"}}`); code != http.StatusOK {
			t.Fatalf("patch: %d %s", code, b)
		}
		typ, obj = nextEvent(t, w)
		data, _ := obj["data"].(map[string]any)
		if typ != "MODIFIED" || objName(obj) != "config-autoscaler" || data["stable-window"] != "90s" || obj["kind"] != "ConfigMap" {
			t.Fatalf("event %s %v", typ, obj)
		}
		// Resetting the config is a change of the ConfigMap, which stays.
		if code, b := do(t, srv, http.MethodDelete, autoscalerCM, ""); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, b)
		}
		typ, obj = nextEvent(t, w)
		if data, _ := obj["data"].(map[string]any); typ != "MODIFIED" || len(data) != 0 {
			t.Fatalf("event %s %v", typ, obj)
		}
	})

	t.Run("configmaps elsewhere", func(t *testing.T) {
		code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces/default/configmaps?watch=true&timeoutSeconds=1", "")
		if code != http.StatusOK || len(strings.TrimSpace(string(b))) != 0 {
			t.Fatalf("%d %q", code, b)
		}
	})

	t.Run("bad field selector", func(t *testing.T) {
		code, b := do(t, srv, http.MethodGet, CorePath+"/namespaces?watch=true&fieldSelector=spec.x%3Dy", "")
		if st := decodeStatus(t, b); code != http.StatusBadRequest || st.Reason != k8smeta.StatusReasonBadRequest {
			t.Fatalf("%d %s", code, b)
		}
	})
}
