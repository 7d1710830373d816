package embedetcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/embedetcd"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
)

// With TLS files the embedded etcd serves https and admits only clients
// presenting a certificate of the CA.
func TestStartTLS(t *testing.T) {
	ca, _, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := ca.IssueFiles(dir, "etcd", pki.Identity{Role: pki.RoleEtcd}, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.IssueFiles(dir, "client", pki.Identity{Role: pki.RoleEtcd, Name: "client"}, nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e, err := embedetcd.StartTLS(t.TempDir(), "127.0.0.1:0", embedetcd.ClientTLS{CAFile: srv.CA, CertFile: srv.Cert, KeyFile: srv.Key})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	ok, err := pki.ClientConfig(cl)
	if err != nil {
		t.Fatal(err)
	}
	anonymous := ok.Clone()
	anonymous.Certificates = nil
	for _, tc := range []struct {
		name string
		cfg  func() *etcdstore.Store
		want bool
	}{
		{"client certificate", func() *etcdstore.Store { s, _ := etcdstore.DialTLS([]string{e.Endpoint}, time.Second, ok); return s }, true},
		{"no certificate", func() *etcdstore.Store {
			s, _ := etcdstore.DialTLS([]string{e.Endpoint}, time.Second, anonymous)
			return s
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.cfg()
			if st == nil {
				t.Fatal("dial failed")
			}
			defer st.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _, err := st.List(ctx, "/kiln/x")
			if (err == nil) != tc.want {
				t.Fatalf("List = %v, want admitted=%v", err, tc.want)
			}
		})
	}
}
