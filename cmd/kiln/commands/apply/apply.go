package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
)

// Command is `kiln apply`.
var Command = &cli.Command{
	Name:  "apply",
	Usage: "create or update Services, Configurations, Routes and DomainMappings from YAML or JSON",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "file to apply (- for stdin); repeatable", Required: true},
		&cli.BoolFlag{Name: "dry-run", Usage: "validate on the server without writing anything"},
	},
	Action: run,
}

var resources = map[string]string{
	v1.KindService:       v1.ResourceServices,
	v1.KindConfiguration: v1.ResourceConfigurations,
	v1.KindRoute:         v1.ResourceRoutes,
	v1.KindRevision:      v1.ResourceRevisions,
	// Served by the serving.knative.dev/v1beta1 API (applyOne).
	v1beta1.KindDomainMapping: v1beta1.ResourceDomainMapping,
}

type doc struct {
	source string
	kind   string
	obj    v1.Object
}

func load(c *cli.Context) ([]doc, error) {
	var docs []doc
	for _, f := range c.StringSlice("filename") {
		var b []byte
		var err error
		if f == "-" {
			b, err = io.ReadAll(c.App.Reader)
		} else {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, err
		}
		parts, err := v1.SplitDocuments(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for i, p := range parts {
			src := fmt.Sprintf("%s (document %d)", f, i+1)
			obj, err := decode(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			docs = append(docs, doc{source: src, kind: kindOf(obj), obj: obj})
		}
	}
	if len(docs) == 0 {
		return nil, errors.New("no objects found in the given files")
	}
	return docs, nil
}

// decode reads a serving.knative.dev/v1 object, or a DomainMapping
// (v1beta1, or v1alpha1 as older manifests have it).
func decode(p []byte) (v1.Object, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if yaml.Unmarshal(p, &tm) == nil && v1beta1.IsDomainMapping(tm.APIVersion, tm.Kind) {
		return v1beta1.Decode(p)
	}
	return v1.Decode(p)
}

func kindOf(o v1.Object) string {
	return reflect.TypeOf(o).Elem().Name()
}

func run(c *cli.Context) error {
	ctx, out := c.Context, c.App.Writer
	docs, err := load(c)
	if err != nil {
		return err
	}
	ns := client.Namespace(c)
	var invalid []string
	for _, d := range docs {
		m := d.obj.Meta()
		if m.Namespace == "" {
			m.Namespace = ns
		}
		if d.kind == v1.KindRevision {
			invalid = append(invalid, fmt.Sprintf("%s: Revisions are created by the controller and cannot be applied", d.source))
			continue
		}
		d.obj.SetDefaults(ctx)
		if fe := d.obj.Validate(ctx); fe != nil {
			invalid = append(invalid, fmt.Sprintf("%s: %s '%s' is invalid: %v", d.source, d.kind, m.Name, fe))
		}
	}
	if len(invalid) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(invalid, "\n"), errdefs.ErrInvalidArgument)
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	suffix := "."
	if dry {
		suffix = " (dry run)."
	}
	for _, d := range docs {
		verb, err := applyOne(c, cl, d, dry)
		if err != nil {
			return fmt.Errorf("%s %q: %w", d.kind, d.obj.Meta().Name, err)
		}
		fmt.Fprintf(out, "%s '%s' %s%s\n", d.kind, d.obj.Meta().Name, verb, suffix)
	}
	return nil
}

// applyOne creates the object or updates it when its spec, labels or
// annotations differ from what is stored.
func applyOne(c *cli.Context, base *client.Client, d doc, dry bool) (string, error) {
	ctx := c.Context
	res := resources[d.kind]
	var cl objectClient = base
	if d.kind == v1beta1.KindDomainMapping {
		cl = base.At(client.DomainMappingAPI)
	}
	m := d.obj.Meta()
	// A resourceVersion in the file pins the update to that version, as
	// kubectl apply does: a stale one is a conflict, never overwritten.
	pinned := m.ResourceVersion
	for attempt := 0; ; attempt++ {
		var cur json.RawMessage
		err := cl.Get(ctx, res, m.Namespace, m.Name, &cur)
		if errdefs.IsNotFound(err) {
			err = cl.Create(ctx, res, m.Namespace, d.obj, dry, nil)
			if errdefs.IsAlreadyExists(err) && attempt < 3 {
				continue // created under us: compare and update instead
			}
			return "created", err
		}
		if err != nil {
			return "", err
		}
		same, rv, err := unchanged(d.obj, cur)
		if err != nil {
			return "", err
		}
		if same {
			return "unchanged", nil
		}
		m.ResourceVersion = rv
		if pinned != "" {
			m.ResourceVersion = pinned
		}
		err = cl.Update(ctx, res, m.Namespace, m.Name, d.obj, dry, nil)
		if errdefs.IsConflict(err) && pinned == "" && attempt < 5 {
			time.Sleep(time.Duration(attempt*50) * time.Millisecond)
			continue
		}
		return "updated", err
	}
}

// objectClient is what applyOne needs of the API of a kind.
type objectClient interface {
	Get(ctx context.Context, resource, ns, name string, out any) error
	Create(ctx context.Context, resource, ns string, obj any, dryRun bool, out any) error
	Update(ctx context.Context, resource, ns, name string, obj any, dryRun bool, out any) error
}

// unchanged compares what apply owns (spec, labels, annotations) of the
// defaulted desired object with the stored one, and returns the stored
// resourceVersion for the update's compare-and-swap.
func unchanged(desired v1.Object, stored json.RawMessage) (bool, string, error) {
	var cur, want struct {
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Labels          map[string]string `json:"labels"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec any `json:"spec"`
	}
	if err := json.Unmarshal(stored, &cur); err != nil {
		return false, "", err
	}
	b, err := json.Marshal(desired)
	if err != nil {
		return false, "", err
	}
	if err := json.Unmarshal(b, &want); err != nil {
		return false, "", err
	}
	same := reflect.DeepEqual(cur.Spec, want.Spec) &&
		equalMaps(cur.Metadata.Labels, want.Metadata.Labels) && equalMaps(v1.WithoutServerAnnotations(cur.Metadata.Annotations), v1.WithoutServerAnnotations(want.Metadata.Annotations))
	return same, cur.Metadata.ResourceVersion, nil
}

func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
