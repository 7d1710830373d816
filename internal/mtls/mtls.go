package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/pki"
)

// Check admits or refuses a verified caller; pki.Allow builds one.
type Check func(pki.Identity) error

// CheckFiles returns an error naming the first missing flag when some but
// not all of the three files are set; a role must not half-enable TLS.
func CheckFiles(f pki.Files) error {
	if !f.Enabled() {
		return nil
	}
	for _, m := range []struct{ v, flag string }{{f.CA, "--tls-ca-file"}, {f.Cert, "--tls-cert-file"}, {f.Key, "--tls-key-file"}} {
		if m.v == "" {
			return fmt.Errorf("%s is required with --tls-ca-file, --tls-cert-file and --tls-key-file (mutual TLS needs all three)", m.flag)
		}
	}
	return nil
}

// WarnPlain logs, once per call site's role, that it runs without mutual
// TLS. Callers call it once at start.
func WarnPlain(log *slog.Logger, f pki.Files) {
	if !f.Enabled() {
		log.Warn("running without mutual TLS: listeners between roles accept anyone on the network; set --tls-ca-file, --tls-cert-file and --tls-key-file")
	}
}

// ServerTLS is the listener config for f, nil when f is zero.
func ServerTLS(f pki.Files) (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	return pki.ServerConfig(f)
}

// ClientTLS is a client config for f that accepts a server certificate of
// the CA carrying one of serverRoles, whatever address was dialed. nil
// when f is zero.
func ClientTLS(f pki.Files, serverRoles ...string) (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cfg, err := pki.ClientConfig(f)
	if err != nil {
		return nil, err
	}
	roots, allow := cfg.RootCAs, pki.Allow(serverRoles...)
	// Identity, not host name, is what a kiln client checks: the chain is
	// verified against the CA below, so skipping Go's host-name check
	// loses nothing it would have checked.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		id, err := pki.IdentityOf(leaf)
		if err != nil {
			return err
		}
		if err := allow(id); err != nil {
			return fmt.Errorf("server is %s, not one of %v", id, serverRoles)
		}
		return nil
	}
	return cfg, nil
}

type identityKey struct{}

// IdentityFrom is the verified caller of a gRPC call or HTTP request served
// with mutual TLS; false on a plain listener.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// NewContext is ctx carrying the verified caller id, as the interceptors
// and Handler hand it to what they guard.
func NewContext(ctx context.Context, id pki.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// GRPCServerOptions are the options of a gRPC server admitting callers that
// pass check; none when f is zero.
func GRPCServerOptions(f pki.Files, check Check) ([]grpc.ServerOption, error) {
	cfg, err := ServerTLS(f)
	if err != nil || cfg == nil {
		return nil, err
	}
	auth := func(ctx context.Context) (context.Context, error) {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "no peer")
		}
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "not a TLS connection")
		}
		id, err := pki.PeerIdentity(&ti.State)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		if err := check(id); err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		return NewContext(ctx, id), nil
	}
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := auth(ctx)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := auth(ss.Context())
			if err != nil {
				return err
			}
			return h(srv, &identityStream{ServerStream: ss, ctx: ctx})
		}),
	}, nil
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// GRPCDialOption is the transport credential of a client of a server of
// one of serverRoles: mutual TLS, or plain when f is zero.
func GRPCDialOption(f pki.Files, serverRoles ...string) (grpc.DialOption, error) {
	cfg, err := ClientTLS(f, serverRoles...)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// Handler admits to h only requests over mutual TLS whose caller passes
// check; others get 401 (no certificate) or 403 (wrong role). A plain
// listener (no TLS at all) is h's business: Handler is only installed
// with ServerTLS.
func Handler(h http.Handler, check Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pki.PeerIdentity(r.TLS)
		if err != nil {
			http.Error(w, "mutual TLS required: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if err := check(id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}
