package apiserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// TestDeleteCollection checks DELETE on a collection as kube-apiserver
// answers it: the matching objects are deleted and returned as a
// ServiceList of the objects as they were; dryRun deletes nothing; bad
// DeleteOptions or selectors are refused before anything is deleted.
func TestDeleteCollection(t *testing.T) {
	type list struct {
		APIVersion string       `json:"apiVersion"`
		Kind       string       `json:"kind"`
		Metadata   ListMeta     `json:"metadata"`
		Items      []v1.Service `json:"items"`
	}
	names := func(l list) []string {
		var out []string
		for _, s := range l.Items {
			out = append(out, s.Metadata.Name)
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		name      string
		query     string
		body      string
		code      int
		reason    string
		deleted   []string // answered
		remaining []string // left in the store
	}{
		{name: "label selector", query: "?labelSelector=tier%3Dweb", code: http.StatusOK,
			deleted: []string{"a", "b"}, remaining: []string{"c"}},
		{name: "field selector", query: "?fieldSelector=metadata.name%3Dc", code: http.StatusOK,
			deleted: []string{"c"}, remaining: []string{"a", "b"}},
		{name: "everything", code: http.StatusOK, body: `{"propagationPolicy":"Background"}`,
			deleted: []string{"a", "b", "c"}},
		{name: "nothing matches", query: "?labelSelector=tier%3Dnone", code: http.StatusOK,
			remaining: []string{"a", "b", "c"}},
		{name: "dry run", query: "?dryRun=All&labelSelector=tier%3Dweb", code: http.StatusOK,
			deleted: []string{"a", "b"}, remaining: []string{"a", "b", "c"}},
		{name: "bad propagation policy", query: "?propagationPolicy=Sometimes", code: http.StatusUnprocessableEntity,
			reason: "Invalid", remaining: []string{"a", "b", "c"}},
		{name: "unsupported field selector", query: "?fieldSelector=spec.x%3Dy", code: http.StatusBadRequest,
			reason: "BadRequest", remaining: []string{"a", "b", "c"}},
		{name: "bad label selector", query: "?labelSelector=%3D%3D", code: http.StatusBadRequest,
			reason: "BadRequest", remaining: []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reg := newServer(t)
			web := `,"labels":{"tier":"web"}`
			for _, s := range []string{svcJSON("a", "img", web), svcJSON("b", "img", web), svcJSON("c", "img")} {
				if code, b := do(t, srv, "POST", svcs, s); code != http.StatusCreated {
					t.Fatalf("create: %d %s", code, b)
				}
			}
			// Another namespace is never touched.
			if code, b := do(t, srv, "POST", BasePath+"/namespaces/knative-serving/services", svcJSON("a", "img", web)); code != http.StatusCreated {
				t.Fatalf("create: %d %s", code, b)
			}
			code, b := do(t, srv, "DELETE", svcs+tc.query, tc.body)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, b)
			}
			if tc.reason != "" {
				if st := decodeStatus(t, b); string(st.Reason) != tc.reason {
					t.Fatalf("reason %q, want %q: %s", st.Reason, tc.reason, b)
				}
			} else {
				var got list
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if got.APIVersion != "serving.knative.dev/v1" || got.Kind != "ServiceList" || got.Metadata.ResourceVersion == "" {
					t.Fatalf("list header: %s", b)
				}
				if g := names(got); !slices.Equal(g, tc.deleted) {
					t.Fatalf("deleted %v, want %v", g, tc.deleted)
				}
				for _, s := range got.Items {
					if s.Metadata.UID == "" || s.Metadata.ResourceVersion == "" || len(s.Spec.Template.Spec.Containers) != 1 {
						t.Fatalf("answered object is not the stored one: %+v", s.Metadata)
					}
				}
			}
			left, _, err := reg.Services().List(t.Context(), "default")
			if err != nil {
				t.Fatal(err)
			}
			var remaining []string
			for _, s := range left {
				remaining = append(remaining, s.Metadata.Name)
			}
			sort.Strings(remaining)
			if !slices.Equal(remaining, tc.remaining) {
				t.Fatalf("remaining %v, want %v", remaining, tc.remaining)
			}
			if _, err := reg.Services().Get(t.Context(), "knative-serving", "a"); err != nil {
				t.Fatalf("other namespace: %v", err)
			}
		})
	}
}
