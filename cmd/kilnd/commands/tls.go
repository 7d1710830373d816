package commands

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-serving/kiln/internal/mtls"
	"github.com/kiln-serving/kiln/internal/pki"
)

// tlsFlags give a role its kiln identity: every listener between roles
// then demands a client certificate from the CA and checks the caller's
// role, and every client between roles presents it. Without them the role
// speaks plain TCP, as before, and says so once.
var tlsFlags = []cli.Flag{
	&cli.StringFlag{Name: "tls-ca-file", Usage: "kiln CA certificate (PEM) that signed every role's certificate (`kiln admin tls ca create`); enables mutual TLS with --tls-cert-file and --tls-key-file", EnvVars: []string{"KILN_TLS_CA_FILE"}},
	&cli.StringFlag{Name: "tls-cert-file", Usage: "this role's certificate (PEM, `kiln admin tls cert create --role ROLE`), presented on its listeners and to the roles it calls", EnvVars: []string{"KILN_TLS_CERT_FILE"}},
	&cli.StringFlag{Name: "tls-key-file", Usage: "private key of --tls-cert-file (PEM)", EnvVars: []string{"KILN_TLS_KEY_FILE"}},
}

// withTLSFlags appends tlsFlags to a role's flags.
func withTLSFlags(flags []cli.Flag) []cli.Flag {
	return append(append([]cli.Flag{}, flags...), tlsFlags...)
}

// roleTLS reads the TLS flags; a partial set is an error naming what is
// missing, so a typo cannot quietly leave a role in plain text.
func roleTLS(c *cli.Context) (pki.Files, error) {
	f := pki.Files{CA: c.String("tls-ca-file"), Cert: c.String("tls-cert-file"), Key: c.String("tls-key-file")}
	if err := mtls.CheckFiles(f); err != nil {
		return pki.Files{}, err
	}
	return f, nil
}

// serveHTTPMutual is serveHTTPWith for a listener between roles: with f it
// serves mutual TLS and admits only callers passing check; without, plain
// HTTP to anyone.
func serveHTTPMutual(ctx context.Context, g *errgroup.Group, addr string, h http.Handler, f pki.Files, check mtls.Check, log *slog.Logger) (net.Addr, error) {
	return serveHTTPMutualGrace(ctx, g, addr, h, f, check, shutdownGrace, log)
}

// serveHTTPMutualGrace is serveHTTPMutual giving requests in flight grace
// to finish once ctx ends.
func serveHTTPMutualGrace(ctx context.Context, g *errgroup.Group, addr string, h http.Handler, f pki.Files, check mtls.Check, grace time.Duration, log *slog.Logger) (net.Addr, error) {
	cfg, err := mtls.ServerTLS(f)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if cfg == nil {
		return serveOnGrace(ctx, g, lis, "http", h, grace, log)
	}
	return serveOnGrace(ctx, g, tls.NewListener(lis, cfg), "https (mutual TLS)", mtls.Handler(h, check), grace, log)
}
