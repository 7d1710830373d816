package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func readyService(name, url string) *v1.Service {
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "7"}}
	s.APIVersion, s.Kind = v1.APIVersion, "Service"
	s.Status.URL = url
	s.Status.LatestCreatedRevisionName, s.Status.LatestReadyRevisionName = name+"-00001", name+"-00001"
	s.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}}
	return s
}

func tableRequest(accept, query string) *http.Request {
	r := httptest.NewRequest("GET", "/apis/serving.knative.dev/v1/namespaces/default/services"+query, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}

const kubectlTableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

func TestWantsTable(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   bool
	}{
		{kubectlTableAccept, true},
		{"application/json;as=Table;v=v1beta1;g=meta.k8s.io", true},
		{"application/json", false},
		{"", false},
		{"application/json,application/json;as=Table;v=v1;g=meta.k8s.io", false},
		{"application/json;as=Table;v=v2;g=meta.k8s.io", false},
		{"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", false},
	} {
		if got := wantsTable(tableRequest(tc.accept, "")); got != tc.want {
			t.Errorf("%q: %v", tc.accept, got)
		}
	}
}

func TestTableServices(t *testing.T) {
	a, _ := findAPIResource(servingGroup, "v1", "services")
	notReady := readyService("down", "")
	notReady.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "RevisionMissing"}}
	objs := []any{readyService("hello", "http://hello.default.example.com"), notReady}

	for _, tc := range []struct {
		query      string
		wantObject string // "PartialObjectMetadata", "Service" or ""
	}{
		{"", "PartialObjectMetadata"},
		{"?includeObject=Metadata", "PartialObjectMetadata"},
		{"?includeObject=Object", "Service"},
		{"?includeObject=None", ""},
	} {
		t.Run(tc.query, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeTable(w, tableRequest(kubectlTableAccept, tc.query), a, objs, "42", "")
			if w.Code != 200 || w.Header().Get("Content-Type") != "application/json;as=Table;v=v1;g=meta.k8s.io" {
				t.Fatalf("%d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			var tab k8smeta.Table
			if err := json.Unmarshal(w.Body.Bytes(), &tab); err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, c := range tab.ColumnDefinitions {
				cols = append(cols, c.Name)
			}
			if got := strings.Join(cols, ","); got != "Name,URL,LatestCreated,LatestReady,Ready,Reason" {
				t.Errorf("columns %s", got)
			}
			if tab.Kind != "Table" || tab.APIVersion != "meta.k8s.io/v1" || tab.ResourceVersion != "42" || len(tab.Rows) != 2 {
				t.Fatalf("table %+v", tab)
			}
			// A missing field is a nil cell, as Kubernetes gives for a CRD column.
			want := [][]any{
				{"hello", "http://hello.default.example.com", "hello-00001", "hello-00001", "True", nil},
				{"down", nil, "down-00001", "down-00001", "False", "RevisionMissing"},
			}
			for i, row := range tab.Rows {
				for j, c := range row.Cells {
					if c != want[i][j] {
						t.Errorf("row %d cell %d (%s) = %#v, want %#v", i, j, cols[j], c, want[i][j])
					}
				}
				var obj struct {
					Kind     string
					Metadata struct{ Name string }
				}
				if tc.wantObject == "" {
					if len(row.Object.Raw) != 0 {
						t.Errorf("object with None: %s", row.Object.Raw)
					}
					continue
				}
				if err := json.Unmarshal(row.Object.Raw, &obj); err != nil || obj.Kind != tc.wantObject || obj.Metadata.Name != want[i][0] {
					t.Errorf("row object %s (%v)", row.Object.Raw, err)
				}
			}
		})
	}

	// A get: one row, the object's resourceVersion.
	w := httptest.NewRecorder()
	writeTable(w, tableRequest(kubectlTableAccept, ""), a, objs[:1], "", "")
	var one k8smeta.Table
	if err := json.Unmarshal(w.Body.Bytes(), &one); err != nil || len(one.Rows) != 1 || one.ResourceVersion != "7" {
		t.Errorf("get as Table: %s (%v)", w.Body, err)
	}

	w = httptest.NewRecorder()
	writeTable(w, tableRequest(kubectlTableAccept, "?includeObject=All"), a, objs, "42", "")
	if st := decodeStatus(t, w.Body.Bytes()); w.Code != 400 || st.Reason != "BadRequest" {
		t.Errorf("bad includeObject: %d %s", w.Code, w.Body)
	}
}

func TestTableCoreColumns(t *testing.T) {
	a, _ := findAPIResource("", "v1", "secrets")
	s := &corev1.Secret{Metadata: metav1.ObjectMeta{Name: "tls", Namespace: "default", CreationTimestamp: metav1.NewTime(time.Now().Add(-3 * time.Minute))},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}}
	w := httptest.NewRecorder()
	writeTable(w, tableRequest("application/json;as=Table;v=v1beta1;g=meta.k8s.io", ""), a, []any{s}, "9", "")
	var tab k8smeta.Table
	if err := json.Unmarshal(w.Body.Bytes(), &tab); err != nil {
		t.Fatal(err)
	}
	if tab.APIVersion != "meta.k8s.io/v1beta1" || len(tab.Rows) != 1 {
		t.Fatalf("%s", w.Body)
	}
	got := tab.Rows[0].Cells
	if len(got) != 4 || got[0] != "tls" || got[1] != corev1.SecretTypeTLS || got[2] != float64(2) || got[3] != "3m" {
		t.Errorf("cells %#v", got)
	}
}
