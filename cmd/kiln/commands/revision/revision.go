package revision

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

// Command is `kiln revision`.
var Command = &cli.Command{
	Name:    "revision",
	Aliases: []string{"revisions", "rev"},
	Usage:   "list, describe and delete revisions",
	Subcommands: []*cli.Command{
		{Name: "list", Aliases: []string{"ls"}, Usage: "list revisions", Action: list, Flags: []cli.Flag{
			printer.OutputFlag,
			&cli.StringFlag{Name: "service", Aliases: []string{"s"}, Usage: "only the revisions of this service"},
		}},
		{Name: "describe", Usage: "show details of a revision", ArgsUsage: "NAME", Action: describe, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "delete", Aliases: []string{"rm"}, Usage: "delete revisions (NAME...), or every revision no traffic target references (--prune SERVICE, --prune-all)", ArgsUsage: "NAME...", Action: del, Flags: []cli.Flag{
			&cli.StringFlag{Name: "prune", Usage: "delete the unreferenced revisions of this service"},
			&cli.BoolFlag{Name: "prune-all", Usage: "delete the unreferenced revisions of every service in the namespace"},
		}},
	},
}

type routing struct {
	percent int64
	tags    []string
}

// trafficOf maps revision name → traffic share and tags from every
// service's status in ns.
func trafficOf(c *cli.Context, cl *client.Client, ns string) (map[string]*routing, error) {
	var svcs []v1.Service
	if _, err := cl.List(c.Context, v1.ResourceServices, ns, &svcs); err != nil {
		return nil, err
	}
	out := map[string]*routing{}
	for _, s := range svcs {
		for _, t := range s.Status.Traffic {
			name := t.RevisionName
			if name == "" {
				continue
			}
			r := out[name]
			if r == nil {
				r = &routing{}
				out[name] = r
			}
			if t.Percent != nil {
				r.percent += *t.Percent
			}
			if t.Tag != "" {
				r.tags = append(r.tags, t.Tag)
			}
		}
	}
	return out, nil
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
	ns := client.Namespace(c)
	var items []v1.Revision
	if _, err := cl.List(c.Context, v1.ResourceRevisions, ns, &items); err != nil {
		return err
	}
	if svc := c.String("service"); svc != "" {
		kept := items[:0]
		for _, r := range items {
			if r.Metadata.Labels[v1.ServiceLabelKey] == svc {
				kept = append(kept, r)
			}
		}
		items = kept
	}
	gen := func(r *v1.Revision) int {
		g, _ := strconv.Atoi(r.Metadata.Labels[v1.ConfigurationGenerationLabel])
		return g
	}
	// kn's order: by service, newest generation first.
	sort.SliceStable(items, func(i, j int) bool {
		si, sj := items[i].Metadata.Labels[v1.ServiceLabelKey], items[j].Metadata.Labels[v1.ServiceLabelKey]
		if si != sj {
			return si < sj
		}
		if gen(&items[i]) != gen(&items[j]) {
			return gen(&items[i]) > gen(&items[j])
		}
		return items[i].Metadata.Name < items[j].Metadata.Name
	})
	if format != "" {
		return printer.List(c.App.Writer, format, v1.APIVersion, v1.KindRevision, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.App.Writer, "No revisions found.")
		return nil
	}
	traffic, err := trafficOf(c, cl, ns)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "NAME", "SERVICE", "TRAFFIC", "TAGS", "GENERATION", "AGE", "CONDITIONS", "READY", "REASON")
	for i := range items {
		r := &items[i]
		pct, tags := "", ""
		if t := traffic[r.Metadata.Name]; t != nil {
			if t.percent > 0 {
				pct = fmt.Sprintf("%d%%", t.percent)
			}
			tags = strings.Join(t.tags, ",")
		}
		ready, reason := printer.Ready(&r.Status.Status)
		printer.Row(tw, r.Metadata.Name, r.Metadata.Labels[v1.ServiceLabelKey], pct, tags,
			r.Metadata.Labels[v1.ConfigurationGenerationLabel], printer.Age(r.Metadata.CreationTimestamp, now),
			printer.Conditions(r.Status.Conditions), ready, reason)
	}
	return tw.Flush()
}

func oneName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("'revision %s' requires the revision name given as the single argument", c.Command.Name)
	}
	return c.Args().First(), nil
}

func describe(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	name, err := oneName(c)
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	var r v1.Revision
	if err := cl.Get(c.Context, v1.ResourceRevisions, ns, name, &r); err != nil {
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
	if len(r.Spec.Containers) > 0 {
		ctr := r.Spec.Containers[0]
		printer.Row(tw, "Image:", ctr.Image)
		if len(ctr.Ports) > 0 {
			printer.Row(tw, "Port:", strconv.Itoa(int(ctr.Ports[0].ContainerPort)))
		}
		if len(ctr.Env) > 0 {
			env := make([]string, len(ctr.Env))
			for i, e := range ctr.Env {
				env[i] = e.Name + "=" + e.Value
			}
			printer.Row(tw, "Env:", strings.Join(env, ", "))
		}
	}
	ann := r.Metadata.Annotations
	if lo, hi := ann[v1.AutoscalingMinScaleAnnotation], ann[v1.AutoscalingMaxScaleAnnotation]; lo != "" || hi != "" {
		if lo == "" {
			lo = "0"
		}
		if hi == "" || hi == "0" {
			hi = "∞"
		}
		printer.Row(tw, "Scale:", lo+" ... "+hi)
	}
	if cc := r.Spec.ContainerConcurrency; cc != nil && *cc > 0 {
		printer.Row(tw, "Concurrency:", "")
		printer.Row(tw, "  Limit:", strconv.FormatInt(*cc, 10))
	}
	if t := ann[v1.AutoscalingTargetAnnotation]; t != "" {
		printer.Row(tw, "  Target:", t)
	}
	if s := r.Metadata.Labels[v1.ServiceLabelKey]; s != "" {
		printer.Row(tw, "Service:", s)
	}
	tw.Flush()
	printer.DescribeConditions(out, r.Status.Conditions, now)
	return nil
}

func del(c *cli.Context) error {
	names := c.Args().Slice()
	prune, pruneAll := c.String("prune"), c.Bool("prune-all")
	switch {
	case (prune != "" || pruneAll) && len(names) > 0:
		return fmt.Errorf("'revision delete' with --prune or --prune-all takes no revision names")
	case prune != "" && pruneAll:
		return fmt.Errorf("'revision delete' takes either --prune SERVICE or --prune-all")
	case prune == "" && !pruneAll && len(names) == 0:
		return fmt.Errorf("'revision delete' requires one or more revision names")
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	if prune != "" || pruneAll {
		if names, err = unreferenced(c, cl, ns, prune); err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(c.App.Writer, "No unreferenced revisions found.")
			return nil
		}
	}
	var failed []string
	for _, name := range names {
		if err := cl.Delete(c.Context, v1.ResourceRevisions, ns, name); err != nil {
			if errdefs.IsNotFound(err) {
				err = fmt.Errorf("revision '%s' not found in namespace '%s'", name, ns)
			}
			failed = append(failed, err.Error())
			continue
		}
		fmt.Fprintf(c.App.Writer, "Revision '%s' deleted in namespace '%s'.\n", name, ns)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "\n"))
	}
	return nil
}

// unreferenced lists the revisions of service svc ("" = every service) that
// no route's traffic reaches and that are not their configuration's latest.
func unreferenced(c *cli.Context, cl *client.Client, ns, svc string) ([]string, error) {
	var revs []v1.Revision
	if _, err := cl.List(c.Context, v1.ResourceRevisions, ns, &revs); err != nil {
		return nil, err
	}
	var routes []v1.Route
	if _, err := cl.List(c.Context, v1.ResourceRoutes, ns, &routes); err != nil {
		return nil, err
	}
	var cfgs []v1.Configuration
	if _, err := cl.List(c.Context, v1.ResourceConfigurations, ns, &cfgs); err != nil {
		return nil, err
	}
	if svc != "" {
		var s v1.Service
		if err := cl.Get(c.Context, v1.ResourceServices, ns, svc, &s); err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("service '%s' not found in namespace '%s'", svc, ns)
			}
			return nil, err
		}
	}
	used := map[string]bool{}
	for _, r := range routes {
		for _, tt := range [][]v1.TrafficTarget{r.Spec.Traffic, r.Status.Traffic} {
			for _, t := range tt {
				used[t.RevisionName] = true
			}
		}
	}
	for _, cfg := range cfgs {
		used[cfg.Status.LatestReadyRevisionName] = true
		used[cfg.Status.LatestCreatedRevisionName] = true
	}
	var out []string
	for _, r := range revs {
		if used[r.Metadata.Name] || (svc != "" && r.Metadata.Labels[v1.ServiceLabelKey] != svc) {
			continue
		}
		out = append(out, r.Metadata.Name)
	}
	sort.Strings(out)
	return out, nil
}
