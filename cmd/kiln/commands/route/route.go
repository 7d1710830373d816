package route

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

// Command is `kiln route`.
var Command = &cli.Command{
	Name:    "route",
	Aliases: []string{"routes"},
	Usage:   "list and describe service routes",
	Subcommands: []*cli.Command{
		{Name: "list", Aliases: []string{"ls"}, Usage: "list routes", ArgsUsage: "[NAME]", Action: list,
			Flags: []cli.Flag{printer.OutputFlag,
				&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list routes in all namespaces"},
				&cli.BoolFlag{Name: "no-headers", Usage: "when using the default output format, don't print headers"},
			}},
		{Name: "describe", Usage: "show details of a route", ArgsUsage: "NAME", Action: describe,
			Flags: []cli.Flag{printer.OutputFlag, &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "more output"}}},
	},
}

// list is kn's `route list [NAME]`: NAME URL READY (NAMESPACE first with
// --all-namespaces).
func list(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	if c.NArg() > 1 {
		return fmt.Errorf("'kiln route list' accepts only one additional argument")
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	ns, all := client.Namespace(c), c.Bool("all-namespaces")
	if all {
		ns = ""
	}
	var items []v1.Route
	if _, err := cl.List(c.Context, v1.ResourceRoutes, ns, &items); err != nil {
		return err
	}
	if name := c.Args().First(); name != "" {
		kept := items[:0]
		for _, r := range items {
			if r.Metadata.Name == name {
				kept = append(kept, r)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		fmt.Fprintln(c.App.Writer, "No routes found.")
		return nil
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Metadata, items[j].Metadata
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	if format != "" {
		return printer.List(c.App.Writer, format, v1.APIVersion, v1.KindRoute, items)
	}
	tw := printer.Table(c.App.Writer)
	if !c.Bool("no-headers") {
		head := []string{"NAME", "URL", "READY"}
		if all {
			head = append([]string{"NAMESPACE"}, head...)
		}
		printer.Row(tw, head...)
	}
	for _, r := range items {
		ready, _ := printer.Ready(&r.Status.Status)
		row := []string{r.Metadata.Name, r.Status.URL, ready}
		if all {
			row = append([]string{r.Metadata.Namespace}, row...)
		}
		printer.Row(tw, row...)
	}
	return tw.Flush()
}

func describe(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return fmt.Errorf("'kiln route describe' requires name of the route as single argument")
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	var r v1.Route
	if err := cl.Get(c.Context, v1.ResourceRoutes, client.Namespace(c), c.Args().First(), &r); err != nil {
		return err
	}
	if format != "" {
		return printer.Object(c.App.Writer, format, &r)
	}
	writeDescription(c.App.Writer, &r, c.Bool("verbose"), time.Now())
	return nil
}

// writeDescription is kn's route description: metadata (Name, Namespace,
// Labels, Annotations, Age), URL, Service, the traffic targets of the
// status and the conditions.
func writeDescription(out io.Writer, r *v1.Route, verbose bool, now time.Time) {
	tw := printer.DescribeTable(out)
	printer.Row(tw, "Name:", r.Metadata.Name)
	printer.Row(tw, "Namespace:", r.Metadata.Namespace)
	writeMap(tw, "Labels:", r.Metadata.Labels, verbose)
	writeMap(tw, "Annotations:", r.Metadata.Annotations, verbose)
	printer.Row(tw, "Age:", printer.Age(r.Metadata.CreationTimestamp, now))
	printer.Row(tw, "URL:", r.Status.URL)
	if svc := serviceOf(r); svc != "" {
		printer.Row(tw, "Service:", svc)
	}
	tw.Flush()

	fmt.Fprintln(out, "\nTraffic Targets:")
	for _, t := range r.Status.Traffic {
		pct := int64(0)
		if t.Percent != nil {
			pct = *t.Percent
		}
		label := t.RevisionName
		if t.LatestRevision != nil && *t.LatestRevision {
			label = "@latest (" + t.RevisionName + ")"
		}
		if t.Tag != "" {
			label += " #" + t.Tag
		}
		fmt.Fprintf(out, "  %3d%%  %s\n", pct, label)
		if t.Tag != "" {
			fmt.Fprintf(out, "        URL:  %s\n", t.URL)
		}
	}
	printer.DescribeConditions(out, r.Status.Conditions, now)
}

// serviceOf is the owning Service, as kn reads it from the owner
// references, falling back to the serving.knative.dev/service label.
func serviceOf(r *v1.Route) string {
	for _, o := range r.Metadata.OwnerReferences {
		if o.Kind == v1.KindService {
			return o.Name
		}
	}
	return r.Metadata.Labels[v1.ServiceLabelKey]
}

// boringDomains are the prefixes kn hides from labels and annotations
// unless --verbose.
var boringDomains = map[string]bool{"serving.knative.dev": true, "client.knative.dev": true, "kubectl.kubernetes.io": true}

// truncateAt is kn's width for a one-line map.
const truncateAt = 100

// writeMap writes m as kn does: one line of sorted key=value pairs
// (truncated, without Knative's own keys), or one pair per line with
// --verbose.
func writeMap(tw io.Writer, label string, m map[string]string, verbose bool) {
	var keys []string
	for k := range m {
		domain, _, found := strings.Cut(k, "/")
		if verbose || !found || !boringDomains[domain] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	sort.Strings(keys)
	if verbose {
		for i, k := range keys {
			l := ""
			if i == 0 {
				l = label
			}
			printer.Row(tw, l, k+"="+m[k])
		}
		return
	}
	width := truncateAt - len(label) - 1
	var b strings.Builder
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + m[k])
		if b.Len() > width {
			break
		}
	}
	line := b.String()
	if len(line) > width {
		line = line[:width-4] + " ..."
	}
	printer.Row(tw, label, line)
}
