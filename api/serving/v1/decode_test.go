package v1

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kiln-serving/kiln/api/errdefs"
)

const helloYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env:
            - name: RESPONSE
              value: "Hello Serverless!"
`

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		kind    string
		wantErr string // substring; "" = success
	}{
		{name: "service yaml", doc: helloYAML, kind: KindService},
		{name: "route json", doc: `{"apiVersion":"serving.knative.dev/v1","kind":"Route","metadata":{"name":"r"},"spec":{"traffic":[{"configurationName":"c","percent":100}]}}`, kind: KindRoute},
		{name: "unknown nested field", doc: strings.Replace(helloYAML, "image:", "imag:", 1), wantErr: "spec.template.spec.containers[0].imag"},
		{name: "wrong case is unknown", doc: strings.Replace(helloYAML, "containers:", "Containers:", 1), wantErr: "spec.template.spec.Containers"},
		{name: "unknown top-level field", doc: helloYAML + "extra: 1\n", wantErr: "unknown field(s): extra"},
		{name: "malformed yaml", doc: "apiVersion: [", wantErr: "malformed"},
		{name: "duplicate key", doc: helloYAML + "kind: Service\n", wantErr: "malformed"},
		{name: "missing kind", doc: "apiVersion: serving.knative.dev/v1\nmetadata: {name: x}\n", wantErr: "missing field(s): apiVersion, kind"},
		{name: "wrong apiVersion", doc: strings.Replace(helloYAML, "serving.knative.dev/v1", "apps/v1", 1), wantErr: "unsupported apiVersion"},
		{name: "unsupported kind", doc: strings.Replace(helloYAML, "kind: Service", "kind: Deployment", 1), wantErr: "unsupported kind"},
		{name: "wrong type", doc: strings.Replace(helloYAML, "name: hello", "name: [1]", 1), wantErr: "decode Service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := Decode([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err %v does not wrap ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch o := obj.(type) {
			case *Service:
				if tc.kind != KindService || o.Metadata.Name != "hello" || o.Spec.Template.Spec.Containers[0].Env[0].Value != "Hello Serverless!" {
					t.Fatalf("decoded %+v", o)
				}
			case *Route:
				if tc.kind != KindRoute || o.Spec.Traffic[0].ConfigurationName != "c" {
					t.Fatalf("decoded %+v", o)
				}
			default:
				t.Fatalf("decoded %T", obj)
			}
			obj.SetDefaults(context.Background())
			if fe := obj.Validate(context.Background()); fe != nil {
				t.Fatalf("sample does not validate: %v", fe)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{name: "single yaml", in: helloYAML, want: 1},
		{name: "multi yaml with empty docs and comments", in: "---\n" + helloYAML + "---\n# just a comment\n---\n" + helloYAML + "...\n", want: 2},
		{name: "json stream", in: `{"a":1} {"b":2}` + "\n" + `{"c":3}`, want: 3},
		{name: "json array", in: `[{"a":1},{"b":2}]`, want: 2},
		{name: "empty", in: "\n\n", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := SplitDocuments([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != tc.want {
				t.Fatalf("got %d docs, want %d: %q", len(docs), tc.want, docs)
			}
		})
	}
	if _, err := SplitDocuments([]byte(`{"a":`)); err == nil {
		t.Fatal("truncated JSON must fail")
	}
}
