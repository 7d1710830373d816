package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/reporter"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
)

// Config configures an Agent. NodeName is required; every other field has
// a default (see withDefaults). Immutable once New returned.
type Config struct {
	// NodeName names the node in nodes/, placements/ and instances/.
	NodeName string
	// Address is the host address queue-proxies listen on and advertise;
	// default 127.0.0.1.
	Address string
	// ContainerdAddress is containerd's socket; default
	// /run/containerd/containerd.sock.
	ContainerdAddress string
	// Namespace is the containerd namespace; default "kiln".
	Namespace string
	// StateDir holds logs, netns mounts, CNI IPAM state and emptyDir
	// volumes; default /var/lib/kiln/agent.
	StateDir string
	// VolumeRoot holds persistent volume claims, one directory per claim:
	// VolumeRoot/<namespace>/<claimName>; default /var/lib/kiln/volumes.
	VolumeRoot string
	// CNIBinDir holds the CNI plugins; default /usr/lib/cni.
	CNIBinDir string
	// BridgeName is the instance bridge (at most 15 chars); default "kiln0".
	BridgeName string
	// Subnet is the instance IPv4 range; default 10.88.0.0/16.
	Subnet string
	// HostNetwork runs containers in the host netns with an agent-assigned
	// PORT, for machines without CNI.
	HostNetwork bool
	// NetworkIsolation keeps instances from reaching the node and each
	// other (agent/network's Firewall, nftables). Ignored with HostNetwork.
	NetworkIsolation bool
	// PortMin and PortMax bound queue-proxy (and host-network app) ports;
	// default 20000-29999.
	PortMin, PortMax int
	// MaxInstances is advertised in the node record; default 100.
	MaxInstances int
	// PlainHTTPRegistries are pulled over plain HTTP (host or host:port);
	// localhost and loopback addresses always are.
	PlainHTTPRegistries []string
	// LeaseTTL is the node lease TTL: a node whose agent is gone (or cut
	// off from etcd) this long loses its records and its instances are
	// placed elsewhere, and an agent that lost its lease stops its
	// instances (fencing). Whole seconds, at least MinLeaseTTL; default
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// AutoscalerLeaders follows the autoscaler leader's address; the agent
	// streams its instances' metrics there every second. Optional: nil
	// reports nothing (tests, or a cluster without autoscaling).
	AutoscalerLeaders reporter.Leaders
	// DrainDelay is how long a stopping instance's queue-proxy keeps
	// serving after it turned not ready, so edges drop it first. Optional,
	// default 1s; negative means none.
	DrainDelay time.Duration
	// PidsLimit caps the processes and threads of each container (its
	// pids cgroup), so one instance cannot fork-bomb the node. Optional,
	// default 1024; negative means no limit.
	PidsLimit int64
	// QueueTLS makes queue-proxies serve mutual TLS with this config,
	// admitting only gateways and activators. Optional: nil serves plain
	// HTTP.
	QueueTLS *tls.Config
	// APIAddress is the host:port the apiserver reaches this node's API
	// (container logs, LogsHandler) at, published in the node record.
	// Optional: empty publishes none, and logs of this node's instances
	// cannot be read through the API.
	APIAddress string
	// AutoscalerCreds is the transport credential to the autoscaler.
	// Optional: nil means plain gRPC.
	AutoscalerCreds grpc.DialOption
	// SecretKeys opens the Secrets instances refer to (the apiserver's
	// --encryption-key-file). Optional: nil reads only Secrets stored in
	// plain text.
	SecretKeys *encryption.Keys
	// QueueCommand, when set, runs each instance's queue-proxy as a
	// process of its own: QueueCommand followed by kilnd queue's flags
	// (e.g. ["/usr/local/bin/kilnd", "queue"]). Such a process outlives
	// the agent, which adopts it again on restart, so requests keep
	// flowing while the agent is down. Optional: empty runs the
	// queue-proxies inside the agent (tests).
	QueueCommand []string
	// QueueFenceTimeout is how long a queue-proxy process serves without
	// a word from its agent before it takes the node lease to be lost,
	// and its instance re-placed, and stops (kilnd queue
	// --fence-timeout). Optional, default LeaseTTL.
	QueueFenceTimeout time.Duration
	// QueueTLSFiles are the files of QueueTLS, handed to queue-proxy
	// processes. Required with QueueTLS and QueueCommand.
	QueueTLSFiles pki.Files
	// StopOnExit stops every instance when Run returns (demo cleanup). By
	// default containers keep running and the next agent re-adopts them.
	StopOnExit bool
}

// DefaultLeaseTTL and MinLeaseTTL bound Config.LeaseTTL. Below two
// seconds one late keep-alive would cost a node all its instances.
const (
	DefaultLeaseTTL = 5 * time.Second
	MinLeaseTTL     = 2 * time.Second
)

// CheckLeaseTTL says why ttl cannot be a node lease TTL (nil if it can).
func CheckLeaseTTL(ttl time.Duration) error {
	if ttl < MinLeaseTTL || ttl%time.Second != 0 {
		return fmt.Errorf("%v: must be a whole number of seconds, at least %v", ttl, MinLeaseTTL)
	}
	return nil
}

func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, errors.New("agent: NodeName is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Address, "127.0.0.1")
	def(&c.ContainerdAddress, "/run/containerd/containerd.sock")
	def(&c.Namespace, "kiln")
	def(&c.StateDir, "/var/lib/kiln/agent")
	def(&c.VolumeRoot, "/var/lib/kiln/volumes")
	def(&c.CNIBinDir, "/usr/lib/cni")
	def(&c.BridgeName, "kiln0")
	def(&c.Subnet, "10.88.0.0/16")
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 20000, 29999
	}
	if c.PortMin <= 0 || c.PortMax < c.PortMin || c.PortMax > 65535 {
		return c, errors.New("agent: bad port range")
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = 100
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = time.Second
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = 1024
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if err := CheckLeaseTTL(c.LeaseTTL); err != nil {
		return c, fmt.Errorf("agent: LeaseTTL %w", err)
	}
	if c.QueueFenceTimeout == 0 {
		c.QueueFenceTimeout = c.LeaseTTL
	}
	if c.QueueFenceTimeout < 0 {
		return c, errors.New("agent: QueueFenceTimeout must be positive")
	}
	if len(c.QueueCommand) > 0 && c.QueueTLS != nil && c.QueueTLSFiles.Cert == "" {
		return c, errors.New("agent: QueueTLSFiles are required with QueueTLS and QueueCommand")
	}
	return c, nil
}
