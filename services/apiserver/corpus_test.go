package apiserver

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// TestManifestCorpus posts every manifest of api/serving/v1/testdata/corpus
// to a fresh server and checks the verdict and the exact field paths the
// server names. A file's header says what to expect:
//
//	# verdict: valid|invalid
//	# paths: spec.traffic, spec.traffic[0].percent
//
// Every document but the last is setup (created or updated, and must be
// accepted); the last one is judged, as an update when its object exists.
func TestManifestCorpus(t *testing.T) {
	files, err := filepath.Glob("../../api/serving/v1/testdata/corpus/*.yaml")
	if err != nil || len(files) < 40 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	resources := map[string]string{v1.KindService: v1.ResourceServices, v1.KindConfiguration: v1.ResourceConfigurations, v1.KindRoute: v1.ResourceRoutes}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			verdict, paths := corpusHeader(string(b))
			docs, err := v1.SplitDocuments(b)
			if err != nil {
				t.Fatal(err)
			}
			srv, _ := newServer(t)
			for i, d := range docs {
				obj, err := v1.Decode(d)
				if err != nil {
					t.Fatalf("document %d: %v", i+1, err)
				}
				m := obj.Meta()
				kind := reflect.TypeOf(obj).Elem().Name()
				coll := BasePath + "/namespaces/" + m.Namespace + "/" + resources[kind]
				body, _ := json.Marshal(obj)
				method, path, okCode := http.MethodPost, coll, http.StatusCreated
				if code, _ := do(t, srv, http.MethodGet, coll+"/"+m.Name, ""); code == http.StatusOK {
					method, path, okCode = http.MethodPut, coll+"/"+m.Name, http.StatusOK
				}
				code, resp := do(t, srv, method, path, string(body))
				last := i == len(docs)-1
				if !last || verdict == "valid" {
					if code != okCode {
						t.Fatalf("document %d: %s = %d, want %d: %s", i+1, method, code, okCode, resp)
					}
					continue
				}
				if code != http.StatusUnprocessableEntity {
					t.Fatalf("%s = %d, want 422: %s", method, code, resp)
				}
				st := decodeStatus(t, resp)
				if st.Reason != "Invalid" || st.Details == nil {
					t.Fatalf("status = %+v", st)
				}
				var got []string
				seen := map[string]bool{}
				for _, c := range st.Details.Causes {
					if !seen[c.Field] {
						seen[c.Field] = true
						got = append(got, c.Field)
					}
					if !strings.Contains(st.Message, c.Field) {
						t.Errorf("message %q does not name %s", st.Message, c.Field)
					}
				}
				sort.Strings(got)
				if !reflect.DeepEqual(got, paths) {
					t.Fatalf("paths = %q, want %q\n%s", got, paths, st.Message)
				}
			}
		})
	}
}

func corpusHeader(s string) (verdict string, paths []string) {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "# verdict: "); ok {
			verdict = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "# paths: "); ok {
			for _, p := range strings.Split(v, ",") {
				paths = append(paths, strings.TrimSpace(p))
			}
		}
	}
	sort.Strings(paths)
	return verdict, paths
}
