package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
)

var kubeconfigCommand = &cli.Command{
	Name:  "kubeconfig",
	Usage: "write a kubeconfig for kubectl, kn and client-go: this CLI's server and CA, and its own credentials or a new token",
	Description: "Without --role the kubeconfig carries the credentials this CLI uses (--token/--token-file or\n" +
		"--client-certificate/--client-key). With --role it carries a new token issued through the API, for\n" +
		"--namespace (or cluster-wide for cluster-admin), as 'kiln admin token create' would issue it.\n\n" +
		"   kiln admin kubeconfig -o ~/.kube/config\n" +
		"   kiln admin kubeconfig --role edit --subject alice -n team-a -o alice.kubeconfig\n" +
		"   KUBECONFIG=alice.kubeconfig kubectl get ksvc",
	Action: writeKubeconfig,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (mode 0600) instead of stdout"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite --output if it exists"},
		&cli.StringFlag{Name: "name", Value: "kiln", Usage: "name of the cluster, user and context in the kubeconfig"},
		&cli.StringFlag{Name: "role", Usage: "issue a new token with this role (view, edit, admin or cluster-admin) instead of using this CLI's credentials"},
		&cli.StringFlag{Name: "subject", Usage: "with --role: the user the new token speaks for (default: token-ID)"},
		&cli.DurationFlag{Name: "ttl", Usage: "with --role: the new token's lifetime, e.g. 720h (default: no expiry)"},
	},
}

// kubeconfig is the subset of clientcmd's v1 Config kiln writes.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
	} `json:"cluster"`
}

type namedUser struct {
	Name string `json:"name"`
	User struct {
		Token                 string `json:"token,omitempty"`
		ClientCertificateData []byte `json:"client-certificate-data,omitempty"`
		ClientKeyData         []byte `json:"client-key-data,omitempty"`
	} `json:"user"`
}

type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace,omitempty"`
	} `json:"context"`
}

func writeKubeconfig(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("'admin kubeconfig' takes no arguments")
	}
	for _, f := range []string{"subject", "ttl"} {
		if c.IsSet(f) && !c.IsSet("role") {
			return fmt.Errorf("--%s needs --role: without it the kubeconfig carries this CLI's own credentials", f)
		}
	}
	out, name := c.String("output"), c.String("name")
	if name == "" {
		return errors.New("--name must not be empty")
	}
	if out != "" && !c.Bool("force") {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("--output %s already exists (use --force to overwrite)", out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--output: %w", err)
		}
	}
	if err := client.CheckServers(c.String(client.FlagServer)); err != nil {
		return err
	}
	// A kubeconfig names one server: the first of --server.
	server := client.Servers(c.String(client.FlagServer))[0]
	var kc kubeconfig
	kc.APIVersion, kc.Kind, kc.CurrentContext = "v1", "Config", name
	var cl namedCluster
	cl.Name = name
	cl.Cluster.Server = server
	if ca := c.String(client.FlagCAFile); ca != "" && strings.HasPrefix(server, "https:") {
		b, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("read --%s: %w", client.FlagCAFile, err)
		}
		cl.Cluster.CertificateAuthorityData = b
	}
	var u namedUser
	u.Name = name
	ns := client.Namespace(c)
	if c.IsSet("role") {
		tok, err := issueToken(c)
		if err != nil {
			return err
		}
		u.User.Token = tok.Status.Token
		if tok.Spec.Namespace != "" {
			ns = tok.Spec.Namespace
		}
	} else {
		token, err := client.Token(c)
		if err != nil {
			return err
		}
		u.User.Token = token
		if cert, key := c.String(client.FlagClientCert), c.String(client.FlagClientKey); cert != "" || key != "" {
			if cert == "" || key == "" {
				return fmt.Errorf("--%s and --%s go together", client.FlagClientCert, client.FlagClientKey)
			}
			if u.User.ClientCertificateData, err = os.ReadFile(cert); err != nil {
				return fmt.Errorf("read --%s: %w", client.FlagClientCert, err)
			}
			if u.User.ClientKeyData, err = os.ReadFile(key); err != nil {
				return fmt.Errorf("read --%s: %w", client.FlagClientKey, err)
			}
		}
		if u.User.Token == "" && u.User.ClientCertificateData == nil {
			return fmt.Errorf("no credentials to write: give --%s, a readable --%s, or --%s/--%s, or --role to issue a token",
				client.FlagToken, client.FlagTokenFile, client.FlagClientCert, client.FlagClientKey)
		}
	}
	var ctx namedContext
	ctx.Name = name
	ctx.Context.Cluster, ctx.Context.User, ctx.Context.Namespace = name, name, ns
	kc.Clusters, kc.Users, kc.Contexts = []namedCluster{cl}, []namedUser{u}, []namedContext{ctx}
	b, err := yaml.Marshal(kc)
	if err != nil {
		return err
	}
	if out == "" {
		_, err := c.App.Writer.Write(b)
		return err
	}
	if err := os.WriteFile(out+".tmp", b, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		_ = os.Remove(out + ".tmp")
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "Saved %s: context %q, server %s, namespace %q. Use it with: KUBECONFIG=%s kubectl get ksvc\n", out, name, server, ns, out)
	return nil
}
