package domain

import "testing"

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, kind, name, ns, err string
	}{
		{ref: "hello", kind: "Service", name: "hello"},
		{ref: "ksvc:hello", kind: "Service", name: "hello"},
		{ref: "ksvc:mysvc:mynamespace", kind: "Service", name: "mysvc", ns: "mynamespace"},
		{ref: "kroute:hello", kind: "Route", name: "hello"},
		{ref: "broker:default", err: "unsupported sink prefix: 'broker'"},
		{ref: "ksvc:", err: `invalid --ref "ksvc:": no name`},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			kind, name, ns, err := ParseRef(tc.ref)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || kind != tc.kind || name != tc.name || ns != tc.ns {
				t.Fatalf("got %q %q %q %v", kind, name, ns, err)
			}
		})
	}
}
