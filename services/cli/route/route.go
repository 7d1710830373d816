package route

import (
	"fmt"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/services/cli/client"
	"github.com/kiln-serving/kiln/services/cli/printer"
)

// Command is `kiln route`.
var Command = &cli.Command{
	Name:    "route",
	Aliases: []string{"routes"},
	Usage:   "list and describe routes",
	Subcommands: []*cli.Command{
		{Name: "list", Aliases: []string{"ls"}, Usage: "list routes", Action: list, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "describe", Usage: "show details of a route", ArgsUsage: "NAME", Action: describe, Flags: []cli.Flag{printer.OutputFlag}},
	},
}

func list(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	var items []v1.Route
	if _, err := cl.List(c.Context, v1.ResourceRoutes, client.Namespace(c), &items); err != nil {
		return err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Metadata.Name < items[j].Metadata.Name })
	if format != "" {
		return printer.List(c.App.Writer, format, v1.APIVersion, v1.KindRoute, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.App.Writer, "No routes found.")
		return nil
	}
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "NAME", "URL", "READY")
	for _, r := range items {
		ready, _ := printer.Ready(&r.Status.Status)
		printer.Row(tw, r.Metadata.Name, r.Status.URL, ready)
	}
	return tw.Flush()
}

func describe(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return fmt.Errorf("'route describe' requires the route name given as the single argument")
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
	out, now := c.App.Writer, time.Now()
	tw := printer.Table(out)
	printer.Row(tw, "Name:", r.Metadata.Name)
	printer.Row(tw, "Namespace:", r.Metadata.Namespace)
	printer.Row(tw, "Age:", printer.Age(r.Metadata.CreationTimestamp, now))
	printer.Row(tw, "URL:", r.Status.URL)
	if s := r.Metadata.Labels[v1.ServiceLabelKey]; s != "" {
		printer.Row(tw, "Service:", s)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nTraffic Targets:")
	traffic := r.Status.Traffic
	if len(traffic) == 0 {
		traffic = r.Spec.Traffic
	}
	for _, t := range traffic {
		pct := int64(0)
		if t.Percent != nil {
			pct = *t.Percent
		}
		label := t.RevisionName
		if t.LatestRevision != nil && *t.LatestRevision {
			label = "@latest (" + t.RevisionName + ")"
			if t.RevisionName == "" {
				label = "@latest (" + t.ConfigurationName + ")"
			}
		}
		if t.Tag != "" {
			label += " #" + t.Tag
		}
		fmt.Fprintf(out, "  %3d%%  %s\n", pct, label)
		if t.URL != "" {
			fmt.Fprintf(out, "        URL:  %s\n", t.URL)
		}
	}
	printer.DescribeConditions(out, r.Status.Conditions, now)
	return nil
}
