// Command etcdmember runs one member of a multi-member etcd cluster as its own
// process, configured as kiln's embedded etcd is (internal/embedetcd: fast
// elections for one machine), so end-to-end tests can kill -9 a member and
// start it again. It serves plain HTTP and is for tests only.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("name", "", "member name (required)")
	dir := flag.String("data-dir", "", "data directory (required); a member restarted on its data rejoins its cluster")
	clientURL := flag.String("client-url", "", "client URL, http://HOST:PORT (required)")
	peerURL := flag.String("peer-url", "", "peer URL, http://HOST:PORT (required)")
	initial := flag.String("initial-cluster", "", "every member as NAME=PEER-URL, comma-separated (required)")
	flag.Parse()
	for flagName, v := range map[string]string{"--name": *name, "--data-dir": *dir, "--client-url": *clientURL, "--peer-url": *peerURL, "--initial-cluster": *initial} {
		if v == "" {
			return fmt.Errorf("%s is required", flagName)
		}
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		return fmt.Errorf("--client-url %q: %w", *clientURL, err)
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		return fmt.Errorf("--peer-url %q: %w", *peerURL, err)
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = *initial
	cfg.InitialClusterToken = "kiln-test"
	cfg.ClusterState = embed.ClusterStateFlagNew
	// As internal/embedetcd: fast elections and lease checks suit members
	// sharing one machine.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %w", *name, err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}
