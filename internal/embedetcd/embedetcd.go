package embedetcd

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is a running embedded etcd.
type Server struct {
	e        *embed.Etcd
	Endpoint string
}

// Start runs etcd with its data in dir, serving clients on clientAddr
// ("127.0.0.1:2379"; port 0 picks a free port) over plain HTTP.
func Start(dir, clientAddr string) (*Server, error) {
	return StartTLS(dir, clientAddr, ClientTLS{})
}

// ClientTLS are PEM files for serving clients over TLS. All three set, or
// none (plain).
type ClientTLS struct {
	CAFile   string // clients must present a certificate of this CA
	CertFile string // the server's certificate; must name the listen host
	KeyFile  string
}

// StartTLS is Start serving clients over TLS with client certificate
// authentication when tlsFiles is set: only holders of a certificate from
// its CA can read or write. The peer listener (one member, loopback, a
// fresh port each start) stays plain.
func StartTLS(dir, clientAddr string, tlsFiles ClientTLS) (*Server, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	clientAddr, err := resolvePort(clientAddr)
	if err != nil {
		return nil, err
	}
	peerAddr, err := resolvePort("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsFiles.CertFile != "" {
		scheme = "https"
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile,
			TrustedCAFile: tlsFiles.CAFile, ClientCertAuth: true}
	}
	cu, _ := url.Parse(scheme + "://" + clientAddr)
	pu, _ := url.Parse("http://" + peerAddr)
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	// Fast elections and lease checks suit a single member on one machine.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 60s", dir)
	}
	return &Server{e: e, Endpoint: cu.String()}, nil
}

// Close stops etcd.
func (s *Server) Close() { s.e.Close() }

func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("etcd listen address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
