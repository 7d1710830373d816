package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

// Command is `kiln service`.
var Command = &cli.Command{
	Name:    "service",
	Aliases: []string{"services", "ksvc"},
	Usage:   "manage Knative services",
	Subcommands: []*cli.Command{
		{
			Name: "create", Usage: "create a service", ArgsUsage: "NAME",
			Flags: append(specFlags(true),
				&cli.StringFlag{Name: "filename", Aliases: []string{"f"}, Usage: "create the service from a YAML or JSON descriptor"},
				&cli.BoolFlag{Name: "force", Usage: "replace the service if it already exists"},
				targetFlag,
			),
			Action: create,
		},
		{Name: "update", Usage: "update a service", ArgsUsage: "NAME", Flags: append(specFlags(false), targetFlag), Action: update},
		{Name: "list", Aliases: []string{"ls"}, Usage: "list services", Flags: []cli.Flag{printer.OutputFlag}, Action: list},
		{Name: "describe", Usage: "show details of a service", ArgsUsage: "NAME", Flags: []cli.Flag{printer.OutputFlag, targetFlag}, Action: describe},
		{Name: "delete", Usage: "delete a service", ArgsUsage: "NAME", Action: del},
		exportCommand,
		applyCommand,
	},
}

func oneName(c *cli.Context, optional bool) (string, error) {
	switch n := c.NArg(); {
	case n == 1:
		return c.Args().First(), nil
	case n == 0 && optional:
		return "", nil
	default:
		return "", fmt.Errorf("'service %s' requires the service name given as the single argument", c.Command.Name)
	}
}

// validate runs the server's rules offline so bad input writes nothing.
func validate(ctx context.Context, s *v1.Service) error {
	s.SetDefaults(ctx)
	if fe := s.Validate(ctx); fe != nil {
		return fmt.Errorf("invalid service '%s': %w", s.Metadata.Name, fe)
	}
	return nil
}

func readDescriptor(path string) (*v1.Service, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	obj, err := v1.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := obj.(*v1.Service)
	if !ok {
		return nil, fmt.Errorf("%s: expected a Service, got %T: %w", path, obj, errdefs.ErrInvalidArgument)
	}
	return s, nil
}

// fromFlags builds the Service that `service create` and `service apply`
// (verb) describe: a descriptor from -f, or NAME and --image, with every
// flag applied over it.
func fromFlags(c *cli.Context, verb string) (*v1.Service, error) {
	name, err := oneName(c, c.IsSet("filename"))
	if err != nil {
		return nil, err
	}
	ns := client.Namespace(c)
	s := &v1.Service{}
	if f := c.String("filename"); f != "" {
		if s, err = readDescriptor(f); err != nil {
			return nil, err
		}
		if name != "" && s.Metadata.Name != "" && s.Metadata.Name != name {
			return nil, fmt.Errorf("provided service name '%s' does not match the name '%s' in the file", name, s.Metadata.Name)
		}
		if s.Metadata.Namespace != "" && c.IsSet(client.FlagNamespace) && s.Metadata.Namespace != ns {
			return nil, fmt.Errorf("namespace '%s' in the file does not match --namespace '%s'", s.Metadata.Namespace, ns)
		}
		if s.Metadata.Namespace != "" {
			ns = s.Metadata.Namespace
		}
	} else if !c.IsSet("image") {
		return nil, fmt.Errorf("'service %s' requires the image name to run provided with the --image option", verb)
	}
	if name != "" {
		s.Metadata.Name = name
	}
	s.Metadata.Namespace = ns
	if err := applyFlags(c, s, true); err != nil {
		return nil, err
	}
	if err := applyRevisionName(c, s, 1); err != nil {
		return nil, err
	}
	return s, nil
}

func create(c *cli.Context) error {
	ctx := c.Context
	s, err := fromFlags(c, "create")
	if err != nil {
		return err
	}
	ns := s.Metadata.Namespace
	if f := trafficFlags(c); f.Changed() {
		// The first revision is @latest: --tag @latest=TAG (or REV=TAG)
		// tags the default all-to-latest target.
		if len(s.Spec.Traffic) == 0 {
			latest, pct := true, int64(100)
			s.Spec.Traffic = []v1.TrafficTarget{{LatestRevision: &latest, Percent: &pct}}
		}
		tr, err := ComputeTraffic(s, f, false, true)
		if err != nil {
			return err
		}
		s.Spec.Traffic = tr
	}
	if t := c.String("target"); t != "" {
		if err := validateCopy(ctx, s); err != nil {
			return err
		}
		if err := writeDescriptor(t, s); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Service '%s' created in namespace '%s'.\n", s.Metadata.Name, ns)
		return nil
	}
	if err := validate(ctx, s); err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	var got v1.Service
	verb := "created"
	err = cl.Create(ctx, v1.ResourceServices, ns, s, false, &got)
	if errdefs.IsAlreadyExists(err) {
		if !c.Bool("force") {
			return fmt.Errorf("cannot create service '%s' in namespace '%s' because the service already exists and no --force option was given", s.Metadata.Name, ns)
		}
		verb = "replaced"
		err = replace(ctx, cl, s, &got)
	}
	if err != nil {
		return err
	}
	return finish(c, cl, &got, verb)
}

// replace overwrites an existing service's spec (create --force).
func replace(ctx context.Context, cl *client.Client, s *v1.Service, got *v1.Service) error {
	return retryConflict(func() error {
		var cur v1.Service
		if err := cl.Get(ctx, v1.ResourceServices, s.Metadata.Namespace, s.Metadata.Name, &cur); err != nil {
			return err
		}
		s.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		return cl.Update(ctx, v1.ResourceServices, s.Metadata.Namespace, s.Metadata.Name, s, false, got)
	})
}

// retryConflict retries a read-modify-write a few times when another writer
// got in between, as kn does.
func retryConflict(f func() error) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = f(); !errdefs.IsConflict(err) {
			return err
		}
		time.Sleep(time.Duration(i*50) * time.Millisecond)
	}
	return err
}

func finish(c *cli.Context, cl *client.Client, s *v1.Service, verb string) error {
	out := c.App.Writer
	name, ns := s.Metadata.Name, s.Metadata.Namespace
	if c.Bool("no-wait") {
		if verb == "unchanged" {
			verb = "updated"
		}
		fmt.Fprintf(out, "Service '%s' %s in namespace '%s'.\n", name, verb, ns)
		return nil
	}
	head := "Creating service"
	if verb == "updated" || verb == "unchanged" {
		head = "Updating Service"
	} else if verb == "replaced" {
		head = "Replacing service"
	}
	fmt.Fprintf(out, "%s '%s' in namespace '%s':\n", head, name, ns)
	p := &progress{w: out, start: time.Now()}
	ready, err := waitReady(c.Context, cl, s, time.Duration(c.Int("wait-timeout"))*time.Second, p)
	if err != nil {
		return err
	}
	if verb == "unchanged" {
		// kn's wording when only traffic, tags or metadata changed.
		fmt.Fprintf(out, "Service '%s' with latest revision '%s' (unchanged) is available at URL:\n%s\n",
			name, ready.Status.LatestReadyRevisionName, ready.Status.URL)
		return nil
	}
	fmt.Fprintf(out, "Service '%s' %s to latest revision '%s' is available at URL:\n%s\n",
		name, verb, ready.Status.LatestReadyRevisionName, ready.Status.URL)
	return nil
}

func update(c *cli.Context) error {
	ctx := c.Context
	name, err := oneName(c, false)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	if t := c.String("target"); t != "" {
		return updateOffline(c, t, ns, name)
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	var got v1.Service
	mutation := false
	err = retryConflict(func() error {
		var cur v1.Service
		if err := cl.Get(ctx, v1.ResourceServices, ns, name, &cur); err != nil {
			return err
		}
		before := templateJSON(&cur)
		if err := applyFlags(c, &cur, false); err != nil {
			return err
		}
		if err := applyRevisionName(c, &cur, cur.Metadata.Generation+1); err != nil {
			return err
		}
		mutation = templateJSON(&cur) != before
		if f := trafficFlags(c); f.Changed() {
			tr, err := ComputeTraffic(&cur, f, c.IsSet("traffic"), mutation)
			if err != nil {
				return err
			}
			cur.Spec.Traffic = tr
		}
		if err := validate(ctx, &cur); err != nil {
			return err
		}
		// cur carries the resourceVersion we read: a concurrent write fails
		// with Conflict and we start over from the fresh object.
		return cl.Update(ctx, v1.ResourceServices, ns, name, &cur, false, &got)
	})
	if err != nil {
		return err
	}
	if !mutation {
		return finish(c, cl, &got, "unchanged")
	}
	return finish(c, cl, &got, "updated")
}

func del(c *cli.Context) error {
	name, err := oneName(c, false)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	if err := cl.Delete(c.Context, v1.ResourceServices, ns, name); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("service '%s' not found in namespace '%s'", name, ns)
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "Service '%s' successfully deleted in namespace '%s'.\n", name, ns)
	return nil
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
	var items []v1.Service
	if _, err := cl.List(c.Context, v1.ResourceServices, client.Namespace(c), &items); err != nil {
		return err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Metadata.Name < items[j].Metadata.Name })
	if format != "" {
		return printer.List(c.App.Writer, format, v1.APIVersion, v1.KindService, items)
	}
	if len(items) == 0 {
		fmt.Fprintf(c.App.Writer, "No services found.\n")
		return nil
	}
	now := time.Now()
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON")
	for _, s := range items {
		ready, reason := printer.Ready(&s.Status.Status)
		printer.Row(tw, s.Metadata.Name, s.Status.URL, s.Status.LatestReadyRevisionName,
			printer.Age(s.Metadata.CreationTimestamp, now), printer.Conditions(s.Status.Conditions), ready, reason)
	}
	return tw.Flush()
}

func describe(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	name, err := oneName(c, false)
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	var s v1.Service
	if t := c.String("target"); t != "" {
		got, err := readTarget(t, ns, name)
		if err != nil {
			return err
		}
		s = *got
	} else if err := cl.Get(c.Context, v1.ResourceServices, ns, name, &s); err != nil {
		return err
	}
	if format != "" {
		return printer.Object(c.App.Writer, format, &s)
	}
	out, now := c.App.Writer, time.Now()
	tw := printer.DescribeTable(out)
	printer.Row(tw, "Name:", s.Metadata.Name)
	printer.Row(tw, "Namespace:", s.Metadata.Namespace)
	if len(s.Metadata.Annotations) > 0 {
		printer.Row(tw, "Annotations:", kvList(s.Metadata.Annotations))
	}
	if s.Metadata.CreationTimestamp != nil {
		printer.Row(tw, "Age:", printer.Age(s.Metadata.CreationTimestamp, now))
	}
	if s.Status.URL != "" {
		printer.Row(tw, "URL:", s.Status.URL)
	}
	tw.Flush()
	if c.String("target") != "" && len(s.Status.Conditions) == 0 {
		return nil // an offline descriptor has no revisions or status yet
	}

	fmt.Fprintln(out, "\nRevisions:")
	traffic := s.Status.Traffic
	if len(traffic) == 0 {
		traffic = s.Spec.Traffic
	}
	for _, t := range traffic {
		revName := t.RevisionName
		label := revName
		if t.LatestRevision != nil && *t.LatestRevision {
			if revName == "" {
				revName = s.Status.LatestReadyRevisionName
			}
			label = "@latest (" + revName + ")"
		}
		if t.Tag != "" {
			label += " #" + t.Tag
		}
		pct := int64(0)
		if t.Percent != nil {
			pct = *t.Percent
		}
		var rev v1.Revision
		detail := ""
		if revName != "" && cl.Get(c.Context, v1.ResourceRevisions, ns, revName, &rev) == nil {
			if g := rev.Metadata.Labels[v1.ConfigurationGenerationLabel]; g != "" {
				label += " [" + g + "]"
			}
			label += " (" + printer.Age(rev.Metadata.CreationTimestamp, now) + ")"
			if len(rev.Spec.Containers) > 0 {
				detail = rev.Spec.Containers[0].Image
			}
		}
		fmt.Fprintf(out, "  %3d%%  %s\n", pct, label)
		if detail != "" {
			fmt.Fprintf(out, "        Image:  %s\n", detail)
		}
	}
	printer.DescribeConditions(out, s.Status.Conditions, now)
	return nil
}

func kvList(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// validateCopy runs the server's defaults and validation on a copy, so an
// offline descriptor keeps only what the user said.
func validateCopy(ctx context.Context, s *v1.Service) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var cp v1.Service
	if err := json.Unmarshal(b, &cp); err != nil {
		return err
	}
	return validate(ctx, &cp)
}

// updateOffline edits the descriptor under --target in place.
func updateOffline(c *cli.Context, target, ns, name string) error {
	s, err := readTarget(target, ns, name)
	if err != nil {
		return err
	}
	if err := applyFlags(c, s, false); err != nil {
		return err
	}
	if err := applyRevisionName(c, s, s.Metadata.Generation+1); err != nil {
		return err
	}
	if f := trafficFlags(c); f.Changed() {
		if len(s.Spec.Traffic) == 0 {
			latest, pct := true, int64(100)
			s.Spec.Traffic = []v1.TrafficTarget{{LatestRevision: &latest, Percent: &pct}}
		}
		tr, err := ComputeTraffic(s, f, c.IsSet("traffic"), true)
		if err != nil {
			return err
		}
		s.Spec.Traffic = tr
	}
	if err := validateCopy(c.Context, s); err != nil {
		return err
	}
	if err := writeDescriptor(target, s); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Service '%s' updated in namespace '%s'.\n", name, ns)
	return nil
}
