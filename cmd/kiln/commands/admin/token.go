package admin

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/auth"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

var tokenCommand = &cli.Command{
	Name:    "token",
	Aliases: []string{"tokens"},
	Usage:   "issue, list and revoke API bearer tokens",
	Subcommands: []*cli.Command{
		{
			Name: "create",
			Usage: "issue a token granting --role in --namespace (cluster-wide for cluster-admin); " +
				"the token is printed once, on stdout",
			Action: createToken,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "role", Usage: "view, edit, admin or cluster-admin", Required: true},
				&cli.StringFlag{Name: "subject", Usage: "user the token speaks for, also the name in its client certificate (default: token-ID)"},
				&cli.DurationFlag{Name: "ttl", Usage: "lifetime, e.g. 720h (default: no expiry)"},
			},
		},
		{Name: "list", Aliases: []string{"ls"}, Usage: "list tokens (never their secrets)", Action: listTokens, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "revoke", Aliases: []string{"delete"}, Usage: "revoke tokens", ArgsUsage: "ID...", Action: revokeTokens},
	},
}

func createToken(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("'admin token create' takes no arguments")
	}
	tok, err := issueToken(c)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, tok.Status.Token)
	return nil
}

// issueToken creates the token the --role, --subject, --ttl and
// --namespace flags describe and tells stderr about it.
func issueToken(c *cli.Context) (*auth.Token, error) {
	role, err := auth.ParseRole(c.String("role"))
	if err != nil {
		return nil, err
	}
	spec := auth.TokenSpec{Subject: c.String("subject"), Role: role}
	if role != auth.RoleClusterAdmin {
		spec.Namespace = client.Namespace(c)
	}
	if ttl := c.Duration("ttl"); ttl != 0 {
		if ttl < time.Second {
			return nil, fmt.Errorf("--ttl %s: want at least 1s", ttl)
		}
		spec.ExpirationSeconds = int64(ttl / time.Second)
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return nil, err
	}
	tok, err := cl.CreateToken(c.Context, spec)
	if err != nil {
		return nil, err
	}
	where := "cluster-wide"
	if tok.Spec.Namespace != "" {
		where = fmt.Sprintf("in namespace %q", tok.Spec.Namespace)
	}
	expires := "never expires"
	if e := tok.Status.ExpirationTimestamp; e != nil {
		expires = "expires " + e.UTC().Format(time.RFC3339)
	}
	// The notice goes to stderr so `> FILE` captures the token alone.
	fmt.Fprintf(c.App.ErrWriter, "Token %s created for subject %q: role %s %s, %s. It is shown only this once.\n",
		tok.Metadata.Name, tok.Spec.Subject, tok.Spec.Role, where, expires)
	return tok, nil
}

func listTokens(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	items, err := cl.ListTokens(c.Context)
	if err != nil {
		return err
	}
	if format != "" {
		return printer.List(c.App.Writer, format, auth.APIVersion, "Token", items)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.App.Writer, "No tokens found.")
		return nil
	}
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "ID", "SUBJECT", "NAMESPACE", "ROLE", "AGE", "EXPIRES")
	now := time.Now()
	for _, t := range items {
		age := "<unknown>"
		if ts := t.Metadata.CreationTimestamp; ts != nil {
			age = printer.Age(metav1.NewTime(*ts), now)
		}
		ns, exp := t.Spec.Namespace, "never"
		if ns == "" {
			ns = "*"
		}
		if e := t.Status.ExpirationTimestamp; e != nil {
			exp = e.UTC().Format(time.RFC3339)
			if !now.Before(*e) {
				exp += " (expired)"
			}
		}
		printer.Row(tw, t.Metadata.Name, t.Spec.Subject, ns, string(t.Spec.Role), age, exp)
	}
	return tw.Flush()
}

func revokeTokens(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("'admin token revoke' requires at least one token ID")
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	for _, id := range c.Args().Slice() {
		if err := cl.RevokeToken(c.Context, id); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Token %s revoked.\n", id)
	}
	return nil
}
