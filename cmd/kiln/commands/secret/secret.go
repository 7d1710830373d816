package secret

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	corev1 "github.com/kiln-serving/kiln/api/core/v1"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

// Command is `kiln secret`.
var Command = &cli.Command{
	Name:    "secret",
	Aliases: []string{"secrets"},
	Usage:   "manage TLS secrets (for DomainMapping --tls)",
	Subcommands: []*cli.Command{
		{Name: "create", Usage: "create a secret", Subcommands: []*cli.Command{
			{Name: "tls", Usage: "create a TLS secret from a PEM certificate chain and its private key", ArgsUsage: "NAME",
				Action: createTLS, Flags: []cli.Flag{
					&cli.StringFlag{Name: "cert", Usage: "path to the PEM certificate (chain)", Required: true},
					&cli.StringFlag{Name: "key", Usage: "path to the PEM private key", Required: true},
				}},
		}},
		{Name: "list", Aliases: []string{"ls"}, Usage: "list secrets", Action: list, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "describe", Usage: "show a secret's certificate (never its key)", ArgsUsage: "NAME", Action: describe, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "delete", Usage: "delete secrets", ArgsUsage: "NAME...", Action: remove},
	},
}

func api(c *cli.Context) (*client.API, error) {
	cl, err := client.FromContext(c)
	if err != nil {
		return nil, err
	}
	return cl.At(client.CoreAPI), nil
}

func createTLS(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("'secret create tls' requires the secret name given as single argument")
	}
	name := c.Args().First()
	crt, err := os.ReadFile(c.String("cert"))
	if err != nil {
		return fmt.Errorf("read --cert: %w", err)
	}
	key, err := os.ReadFile(c.String("key"))
	if err != nil {
		return fmt.Errorf("read --key: %w", err)
	}
	ns := client.Namespace(c)
	sec := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: corev1.APIVersion, Kind: corev1.KindSecret},
		Metadata: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:     corev1.SecretTypeTLS,
		Data:     map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key},
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	if err := a.Create(c.Context, corev1.ResourceSecret, ns, sec, false, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "secret/%s created\n", name)
	return nil
}

func list(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	var items []corev1.Secret
	if err := a.List(c.Context, corev1.ResourceSecret, client.Namespace(c), &items); err != nil {
		return err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Metadata.Name < items[j].Metadata.Name })
	if format != "" {
		return printer.List(c.App.Writer, format, corev1.APIVersion, corev1.KindSecret, items)
	}
	if len(items) == 0 {
		fmt.Fprintf(c.App.Writer, "No resources found in %s namespace.\n", client.Namespace(c))
		return nil
	}
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "NAME", "TYPE", "DATA", "AGE")
	now := time.Now()
	for _, s := range items {
		// The API redacts tls.key; count it as kubectl would.
		n := len(s.Data)
		if _, ok := s.Data[corev1.TLSPrivateKeyKey]; !ok && s.Type == corev1.SecretTypeTLS {
			n++
		}
		printer.Row(tw, s.Metadata.Name, s.Type, strconv.Itoa(n), printer.Age(s.Metadata.CreationTimestamp, now))
	}
	return tw.Flush()
}

func describe(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return fmt.Errorf("'secret describe' requires the secret name given as single argument")
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	var s corev1.Secret
	if err := a.Get(c.Context, corev1.ResourceSecret, client.Namespace(c), c.Args().First(), &s); err != nil {
		return err
	}
	if format != "" {
		return printer.Object(c.App.Writer, format, &s)
	}
	out := c.App.Writer
	tw := printer.Table(out)
	printer.Row(tw, "Name:", s.Metadata.Name)
	printer.Row(tw, "Namespace:", s.Metadata.Namespace)
	printer.Row(tw, "Type:", s.Type)
	printer.Row(tw, "Age:", printer.Age(s.Metadata.CreationTimestamp, time.Now()))
	if info, err := corev1.ParseCert(s.Data[corev1.TLSCertKey]); err == nil {
		printer.Row(tw, "Subject:", info.Subject)
		printer.Row(tw, "DNS Names:", strings.Join(info.DNSNames, ", "))
		printer.Row(tw, "Not After:", info.NotAfter.UTC().Format(time.RFC3339))
	}
	printer.Row(tw, "Data:", fmt.Sprintf("%s: %d bytes, %s: (not shown)", corev1.TLSCertKey, len(s.Data[corev1.TLSCertKey]), corev1.TLSPrivateKeyKey))
	return tw.Flush()
}

func remove(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("'secret delete' requires at least one secret name")
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	for _, name := range c.Args().Slice() {
		if err := a.Delete(c.Context, corev1.ResourceSecret, client.Namespace(c), name); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "secret %q deleted\n", name)
	}
	return nil
}
