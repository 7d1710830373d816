package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/internal/pki"
)

var tlsCommand = &cli.Command{
	Name:  "tls",
	Usage: "create the kiln CA and role certificates",
	Description: `Every kilnd role that listens for or calls another role takes
--tls-ca-file, --tls-cert-file and --tls-key-file. Create the CA once, then a
certificate per role and machine, and copy ca.crt, ROLE.crt and ROLE.key to
that machine (e.g. /etc/kiln/tls/). Keep ca.key off the fleet.`,
	Subcommands: []*cli.Command{
		{Name: "ca", Usage: "the kiln certificate authority", Subcommands: []*cli.Command{caCreateCommand}},
		{Name: "cert", Usage: "role certificates", Subcommands: []*cli.Command{certCreateCommand}},
	},
}

var dirFlag = &cli.StringFlag{Name: "dir", Usage: "directory the files are written to", Value: "."}

var caCreateCommand = &cli.Command{
	Name:  "create",
	Usage: "create the kiln CA: DIR/ca.crt (give it to every role) and DIR/ca.key (keep it safe)",
	Description: `Writes ca.crt and ca.key (mode 0600) into --dir. Refuses to overwrite
existing files: a new CA invalidates every certificate issued from the old one.`,
	Flags: []cli.Flag{
		dirFlag,
		&cli.IntFlag{Name: "days", Usage: "validity of the CA in days", Value: 1825},
		&cli.StringFlag{Name: "common-name", Usage: "subject common name of the CA", Value: "kiln CA"},
	},
	Action: func(c *cli.Context) error {
		dir := c.String("dir")
		certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
		if err := absent(certFile, keyFile); err != nil {
			return err
		}
		ca, keyPEM, err := pki.NewCA(c.String("common-name"), days(c.Int("days")), time.Now())
		if err != nil {
			return err
		}
		if err := pki.WriteFile(keyFile, keyPEM, true); err != nil {
			return err
		}
		if err := pki.WriteFile(certFile, ca.CertPEM, false); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "==> Saved %s\n==> Saved %s\n", certFile, keyFile)
		return nil
	},
}

var certCreateCommand = &cli.Command{
	Name:  "create",
	Usage: "issue a role certificate from the CA: DIR/ROLE.crt and DIR/ROLE.key (DIR/ROLE-NODE.* with --node)",
	Description: `The certificate names its identity as spiffe://kiln/ROLE[/NODE] in a URI
SAN; listeners admit callers by that role:
  xds (ADS/SDS)        gateway
  autoscaler (gRPC)    agent, activator (an agent only for its own node)
  activator (HTTP)     gateway
  queue-proxy (HTTP)   gateway, activator
An agent's certificate must name its node (--node = the agent's --node-name).
Gateways and Envoy edges both use --role gateway. Clients check a server's
role, not its host name; --host adds DNS or IP SANs for other tools (curl).
Usable as both server and client certificate.`,
	Flags: []cli.Flag{
		dirFlag,
		&cli.StringFlag{Name: "role", Usage: "role: " + strings.Join(pki.Roles, ", "), Required: true},
		&cli.StringFlag{Name: "node", Usage: "node (agent: required, its --node-name) or instance name in the identity"},
		&cli.StringSliceFlag{Name: "host", Usage: "DNS name or IP address the certificate serves as (repeatable)"},
		&cli.StringFlag{Name: "ca", Usage: "CA certificate (default DIR/ca.crt)"},
		&cli.StringFlag{Name: "key", Usage: "CA private key (default DIR/ca.key)"},
		&cli.IntFlag{Name: "days", Usage: "validity in days (never beyond the CA's)", Value: 365},
	},
	Action: func(c *cli.Context) error {
		dir := c.String("dir")
		id := pki.Identity{Role: c.String("role"), Name: c.String("node")}
		if err := id.Validate(); err != nil {
			return err
		}
		if id.Role == pki.RoleAgent && id.Name == "" {
			return errors.New("--node is required for an agent: the autoscaler takes its metrics only for that node")
		}
		caFile, caKey := c.String("ca"), c.String("key")
		if caFile == "" {
			caFile = filepath.Join(dir, "ca.crt")
		}
		if caKey == "" {
			caKey = filepath.Join(dir, "ca.key")
		}
		ca, err := pki.LoadCA(caFile, caKey)
		if err != nil {
			return fmt.Errorf("%w (create one with 'kiln admin tls ca create')", err)
		}
		base := id.Role
		if id.Name != "" {
			base += "-" + id.Name
		}
		certFile, keyFile := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
		if err := absent(certFile, keyFile); err != nil {
			return err
		}
		certPEM, keyPEM, err := ca.Issue(id, c.StringSlice("host"), days(c.Int("days")), time.Now())
		if err != nil {
			return err
		}
		if err := pki.WriteFile(keyFile, keyPEM, true); err != nil {
			return err
		}
		if err := pki.WriteFile(certFile, certPEM, false); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "==> Using %s and %s\n==> Saved %s\n==> Saved %s\n", caFile, caKey, certFile, keyFile)
		return nil
	},
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// absent refuses to overwrite: a replaced key breaks whoever uses it.
func absent(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another --dir", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
