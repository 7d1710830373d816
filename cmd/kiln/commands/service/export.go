package service

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

var exportCommand = &cli.Command{
	Name: "export", Usage: "export a service as a descriptor (without status and server-set metadata) to re-create it elsewhere",
	ArgsUsage: "NAME", Action: export,
	Flags: []cli.Flag{printer.OutputFlag,
		&cli.BoolFlag{Name: "with-revisions", Usage: "export all routed revisions (experimental, as in kn)"},
		&cli.StringFlag{Name: "mode", Usage: "format for exporting all routed revisions: replay (a List of Services, one per revision) or export (a client.knative.dev/v1alpha1 Export)"},
	},
}

var applyCommand = &cli.Command{
	Name: "apply", Usage: "create the service if it does not exist, else update it to exactly what the flags or file describe",
	ArgsUsage: "NAME",
	Flags: append(specFlags(true),
		&cli.StringFlag{Name: "filename", Aliases: []string{"f"}, Usage: "apply a YAML or JSON descriptor"},
	),
	Action: apply,
}

func export(c *cli.Context) error {
	format, err := printer.Format(c)
	if err != nil {
		return err
	}
	if format == "" {
		return fmt.Errorf("'service export' requires output format to be set with -o yaml or -o json")
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
	if err := cl.Get(c.Context, v1.ResourceServices, ns, name, &s); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("services.serving.knative.dev %q not found", name)
		}
		return err
	}
	if c.Bool("with-revisions") {
		mode := c.String("mode")
		if mode != exportModeReplay && mode != exportModeExport {
			return errExportMode
		}
		var revs []v1.Revision
		if _, err := cl.List(c.Context, v1.ResourceRevisions, ns, &revs); err != nil {
			return err
		}
		b, err := exportWithRevisions(&s, revs, mode, format == "json")
		if err != nil {
			return err
		}
		_, err = c.App.Writer.Write(b)
		return err
	}
	s.Status = v1.ServiceStatus{}
	s.Metadata.OwnerReferences = nil
	b, err := descriptor(&s, format == "json")
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b)
	return err
}

// apply creates the service, or replaces its spec, labels and annotations
// when they differ from what is described; it reports "unchanged" otherwise.
func apply(c *cli.Context) error {
	ctx := c.Context
	s, err := fromFlags(c, "apply")
	if err != nil {
		return err
	}
	ns := s.Metadata.Namespace
	if err := validate(ctx, s); err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	var cur v1.Service
	err = cl.Get(ctx, v1.ResourceServices, ns, s.Metadata.Name, &cur)
	if errdefs.IsNotFound(err) {
		var got v1.Service
		if err := cl.Create(ctx, v1.ResourceServices, ns, s, false, &got); err != nil {
			return err
		}
		return finish(c, cl, &got, "created")
	}
	if err != nil {
		return err
	}
	if sameService(ctx, &cur, s) {
		fmt.Fprintf(c.App.Writer, "Service '%s' in namespace '%s' is unchanged.\n", s.Metadata.Name, ns)
		return nil
	}
	var got v1.Service
	if err := replace(ctx, cl, s, &got); err != nil {
		return err
	}
	return finish(c, cl, &got, "updated")
}

// sameService compares what apply owns: spec, labels and annotations.
func sameService(_ context.Context, a, b *v1.Service) bool {
	ja, _ := json.Marshal(a.Spec)
	jb, _ := json.Marshal(b.Spec)
	eq := func(x, y map[string]string) bool { return len(x) == len(y) && (len(x) == 0 || reflect.DeepEqual(x, y)) }
	return string(ja) == string(jb) && eq(a.Metadata.Labels, b.Metadata.Labels) && eq(v1.WithoutServerAnnotations(a.Metadata.Annotations), v1.WithoutServerAnnotations(b.Metadata.Annotations))
}
