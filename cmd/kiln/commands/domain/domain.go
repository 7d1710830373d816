package domain

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

const refUsage = "Addressable target reference for Domain Mapping. You can specify a Knative service, a Knative route. " +
	"Examples: '--ref ksvc:hello' or simply '--ref hello' for a Knative service 'hello', '--ref kroute:hello' for a Knative route 'hello'. " +
	"'--ref ksvc:mysvc:mynamespace' for a Knative service 'mysvc' in another namespace 'mynamespace'. " +
	"If a prefix is not provided, it is considered as a Knative service in the current namespace."

const tlsUsage = "Enable TLS and point to the secret that holds the server certificate."

// Command is `kiln domain`.
var Command = &cli.Command{
	Name:    "domain",
	Aliases: []string{"domains"},
	Usage:   "manage domain mappings",
	Subcommands: []*cli.Command{
		{Name: "create", Usage: "create a domain mapping", ArgsUsage: "NAME", Action: create,
			Description: "kiln domain create hello.example.com --ref hello [--tls my-cert-secret]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "ref", Usage: refUsage, Required: true},
				&cli.StringFlag{Name: "tls", Usage: tlsUsage},
			}},
		{Name: "update", Usage: "update a domain mapping", ArgsUsage: "NAME", Action: update,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "ref", Usage: refUsage},
				&cli.StringFlag{Name: "tls", Usage: tlsUsage + " An empty value turns TLS off."},
			}},
		{Name: "list", Aliases: []string{"ls"}, Usage: "list domain mappings", Action: list,
			Flags: []cli.Flag{printer.OutputFlag, &cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list across all namespaces"}}},
		{Name: "describe", Usage: "show details of a domain mapping", ArgsUsage: "NAME", Action: describe,
			Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output format: yaml, json or url (default: human-readable)"}}},
		{Name: "delete", Usage: "delete a domain mapping", ArgsUsage: "NAME", Action: remove},
	},
}

func api(c *cli.Context) (*client.API, error) {
	cl, err := client.FromContext(c)
	if err != nil {
		return nil, err
	}
	return cl.At(client.DomainMappingAPI), nil
}

// ParseRef splits kn's --ref syntax: NAME (a Service), ksvc:NAME[:NS] or
// kroute:NAME[:NS].
func ParseRef(ref string) (kind, name, ns string, err error) {
	parts := strings.SplitN(ref, ":", 3)
	prefix := "ksvc"
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		prefix, name = parts[0], parts[1]
	default:
		prefix, name, ns = parts[0], parts[1], parts[2]
	}
	switch prefix {
	case "ksvc":
		kind = v1.KindService
	case "kroute":
		kind = v1.KindRoute
	default:
		return "", "", "", fmt.Errorf("unsupported sink prefix: '%s'", prefix)
	}
	if name == "" {
		return "", "", "", fmt.Errorf("invalid --ref %q: no name", ref)
	}
	return kind, name, ns, nil
}

// resolveRef checks the target exists (as kn does) and returns its reference.
func resolveRef(c *cli.Context, ref, ns string) (v1beta1.KReference, error) {
	kind, name, refNS, err := ParseRef(ref)
	if err != nil {
		return v1beta1.KReference{}, err
	}
	if refNS == "" {
		refNS = ns
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return v1beta1.KReference{}, err
	}
	resource := v1.ResourceServices
	if kind == v1.KindRoute {
		resource = v1.ResourceRoutes
	}
	var obj struct{ Kind, APIVersion string }
	if err := cl.Get(c.Context, resource, refNS, name, &obj); err != nil {
		return v1beta1.KReference{}, err
	}
	return v1beta1.KReference{Kind: kind, Name: name, Namespace: refNS, APIVersion: v1.APIVersion}, nil
}

func oneName(c *cli.Context, verb, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("'domain %s' requires %s given as single argument", verb, what)
	}
	return c.Args().First(), nil
}

func create(c *cli.Context) error {
	name, err := oneName(c, "create", "the domain name")
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	ref, err := resolveRef(c, c.String("ref"), ns)
	if err != nil {
		return err
	}
	dm := &v1beta1.DomainMapping{
		TypeMeta: metav1.TypeMeta{APIVersion: v1beta1.APIVersion, Kind: v1beta1.KindDomainMapping},
		Metadata: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:     v1beta1.DomainMappingSpec{Ref: ref},
	}
	if s := c.String("tls"); s != "" {
		dm.Spec.TLS = &v1beta1.SecretTLS{SecretName: s}
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	if err := a.Create(c.Context, v1beta1.ResourceDomainMapping, ns, dm, false, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Domain mapping '%s' created in namespace '%s'.\n", name, ns)
	return nil
}

func update(c *cli.Context) error {
	name, err := oneName(c, "update", "the domain name")
	if err != nil {
		return err
	}
	if !c.IsSet("ref") && !c.IsSet("tls") {
		return errors.New("'domain update' requires --ref or --tls")
	}
	ns := client.Namespace(c)
	a, err := api(c)
	if err != nil {
		return err
	}
	var dm v1beta1.DomainMapping
	if err := a.Get(c.Context, v1beta1.ResourceDomainMapping, ns, name, &dm); err != nil {
		return err
	}
	if c.IsSet("ref") {
		if dm.Spec.Ref, err = resolveRef(c, c.String("ref"), ns); err != nil {
			return err
		}
	}
	if c.IsSet("tls") {
		dm.Spec.TLS = nil
		if s := c.String("tls"); s != "" {
			dm.Spec.TLS = &v1beta1.SecretTLS{SecretName: s}
		}
	}
	if err := a.Update(c.Context, v1beta1.ResourceDomainMapping, ns, name, &dm, false, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Domain mapping '%s' updated in namespace '%s'.\n", name, ns)
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
	ns := client.Namespace(c)
	all := c.Bool("all-namespaces")
	if all {
		ns = ""
	}
	var items []v1beta1.DomainMapping
	if err := a.List(c.Context, v1beta1.ResourceDomainMapping, ns, &items); err != nil {
		return err
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Metadata, items[j].Metadata
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	if format != "" {
		return printer.List(c.App.Writer, format, v1beta1.APIVersion, v1beta1.KindDomainMapping, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.App.Writer, "No domain mapping found.")
		return nil
	}
	tw := printer.Table(c.App.Writer)
	head := []string{"NAME", "URL", "READY", "KSVC"}
	if all {
		head = append([]string{"NAMESPACE"}, head...)
	}
	printer.Row(tw, head...)
	for _, dm := range items {
		ready, _ := printer.Ready(&dm.Status.Status)
		row := []string{dm.Metadata.Name, dm.Status.URL, ready, dm.Spec.Ref.Name}
		if all {
			row = append([]string{dm.Metadata.Namespace}, row...)
		}
		printer.Row(tw, row...)
	}
	return tw.Flush()
}

func describe(c *cli.Context) error {
	name, err := oneName(c, "describe", "name of the domain mapping")
	if err != nil {
		return err
	}
	format := c.String("output")
	switch format {
	case "", "yaml", "json", "url":
	default:
		return fmt.Errorf("invalid value %q for --output: use yaml, json or url", format)
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	var dm v1beta1.DomainMapping
	if err := a.Get(c.Context, v1beta1.ResourceDomainMapping, client.Namespace(c), name, &dm); err != nil {
		return err
	}
	switch format {
	case "url":
		fmt.Fprintln(c.App.Writer, dm.Status.URL)
		return nil
	case "yaml", "json":
		return printer.Object(c.App.Writer, format, &dm)
	}
	out, now := c.App.Writer, time.Now()
	tw := printer.Table(out)
	printer.Row(tw, "Name:", dm.Metadata.Name)
	printer.Row(tw, "Namespace:", dm.Metadata.Namespace)
	printer.Row(tw, "Age:", printer.Age(dm.Metadata.CreationTimestamp, now))
	tw.Flush()
	fmt.Fprintln(out)
	tw = printer.Table(out)
	printer.Row(tw, "URL:", dm.Status.URL)
	ref := dm.Spec.Ref.Name
	if dm.Spec.Ref.Kind == v1.KindRoute {
		printer.Row(tw, "Route:", ref)
	} else {
		printer.Row(tw, "Service:", ref)
	}
	if dm.Spec.TLS != nil {
		printer.Row(tw, "TLS Secret:", dm.Spec.TLS.SecretName)
	}
	tw.Flush()
	printer.DescribeConditions(out, dm.Status.Conditions, now)
	return nil
}

func remove(c *cli.Context) error {
	name, err := oneName(c, "delete", "the domain name")
	if err != nil {
		return err
	}
	a, err := api(c)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	if err := a.Delete(c.Context, v1beta1.ResourceDomainMapping, ns, name); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Domain mapping '%s' deleted in namespace '%s'.\n", name, ns)
	return nil
}
