package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/api/config"
	kconfig "github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/printer"
)

// Command is `kiln config`.
var Command = &cli.Command{
	Name:    "config",
	Aliases: []string{"configs"},
	Usage:   "show and change cluster-wide configuration (Knative's config-* maps)",
	Description: `Each config is named like a Knative config map without the "config-" prefix
(autoscaler, defaults, gc, domain, network, features, deployment) and takes the same
keys, defaults and values. Changes apply to every kiln process without a restart.`,
	Subcommands: []*cli.Command{
		{Name: "list", Aliases: []string{"ls"}, Usage: "list the configs and how many keys each sets", Action: list},
		{Name: "get", Aliases: []string{"describe"}, Usage: "show a config's effective values: the keys set and the defaults of the rest",
			ArgsUsage: "NAME", Action: get, Flags: []cli.Flag{printer.OutputFlag}},
		{Name: "set", Usage: "set keys (KEY=VALUE) and remove keys (KEY-) of a config",
			ArgsUsage: "NAME KEY=VALUE... [KEY-...]", Action: set,
			Description: `Sets and removals are applied together; the server validates the result and
writes nothing when any value is invalid. A removed key goes back to its default.

Examples:
  kiln config set autoscaler stable-window=90s scale-to-zero-grace-period=1m
  kiln config set features multi-container=enabled kubernetes.podspec-volumes-emptydir=enabled
  kiln config set network default-external-scheme-`},
		{Name: "reset", Usage: "remove every key of a config, back to the defaults", ArgsUsage: "NAME", Action: reset},
	},
}

// View is what `config get -o yaml|json` prints: the keys set (data) and
// the defaults that apply to every other key (defaults).
type View struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   config.ConfigMeta `json:"metadata"`
	Data       map[string]string `json:"data"`
	Defaults   map[string]string `json:"defaults,omitempty"`
}

func oneName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("'kiln config %s' requires the config name given as single argument (one of %s)", c.Command.Name, strings.Join(kconfig.Names(), ", "))
	}
	return c.Args().First(), nil
}

func list(c *cli.Context) error {
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	items, err := cl.ListConfigs(c.Context)
	if err != nil {
		return err
	}
	tw := printer.Table(c.App.Writer)
	printer.Row(tw, "NAME", "KNATIVE", "SET", "KEYS")
	for _, it := range items {
		printer.Row(tw, it.Metadata.Name, "config-"+it.Metadata.Name, fmt.Sprint(len(it.Data)), strings.Join(sortedKeys(it.Data), ","))
	}
	return tw.Flush()
}

func get(c *cli.Context) error {
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
	cfg, err := cl.GetConfig(c.Context, name)
	if err != nil {
		return err
	}
	eff := kconfig.EffectiveData(name, cfg.Data)
	if format != "" {
		v := View{APIVersion: cfg.APIVersion, Kind: cfg.Kind, Metadata: cfg.Metadata, Data: cfg.Data, Defaults: map[string]string{}}
		if v.Data == nil {
			v.Data = map[string]string{}
		}
		for _, e := range eff {
			if !e.Set {
				v.Defaults[e.Key] = e.Value
			}
		}
		return printer.Object(c.App.Writer, format, v)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Name:      %s (Knative config-%s)\n", name, name)
	if cfg.Metadata.ResourceVersion == "0" {
		fmt.Fprintf(w, "Stored:    no (every key at its default)\n\n")
	} else {
		fmt.Fprintf(w, "Stored:    resourceVersion %s\n\n", cfg.Metadata.ResourceVersion)
	}
	tw := printer.Table(w)
	printer.Row(tw, "KEY", "VALUE", "SOURCE")
	for _, e := range eff {
		src := "default"
		if e.Set {
			src = "set"
		}
		printer.Row(tw, e.Key, oneLine(e.Value), src)
	}
	return tw.Flush()
}

// oneLine keeps multi-line values (config-domain selectors) on one row.
func oneLine(v string) string {
	if v == "" {
		return `""`
	}
	return strings.ReplaceAll(strings.TrimSpace(v), "\n", `\n`)
}

// ParseAssignments splits KEY=VALUE and KEY- arguments. A key may appear
// once; a value may contain "=".
func ParseAssignments(args []string) (set map[string]string, unset []string, err error) {
	set = map[string]string{}
	seen := map[string]bool{}
	for _, a := range args {
		var key string
		switch k, v, ok := strings.Cut(a, "="); {
		case ok && k != "":
			key = k
			set[k] = v
		case !ok && strings.HasSuffix(a, "-") && len(a) > 1:
			key = strings.TrimSuffix(a, "-")
			unset = append(unset, key)
		default:
			return nil, nil, fmt.Errorf("invalid argument %q: expected KEY=VALUE to set a key or KEY- to remove it", a)
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("key %q given more than once", key)
		}
		seen[key] = true
	}
	return set, unset, nil
}

func set(c *cli.Context) error {
	if c.NArg() < 2 {
		return fmt.Errorf("'kiln config set' requires a config name and at least one KEY=VALUE or KEY- (configs: %s)", strings.Join(kconfig.Names(), ", "))
	}
	name := c.Args().First()
	set, unset, err := ParseAssignments(c.Args().Slice()[1:])
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	out, err := cl.PatchConfig(c.Context, name, set, unset)
	if err != nil {
		return err
	}
	var parts []string
	for _, k := range sortedKeys(set) {
		parts = append(parts, k+"="+set[k])
	}
	for _, k := range unset {
		parts = append(parts, k+" (default)")
	}
	fmt.Fprintf(c.App.Writer, "Config '%s' updated: %s (resourceVersion %s).\n", name, strings.Join(parts, ", "), out.Metadata.ResourceVersion)
	return nil
}

func reset(c *cli.Context) error {
	name, err := oneName(c)
	if err != nil {
		return err
	}
	cl, err := client.FromContext(c)
	if err != nil {
		return err
	}
	if err := cl.ResetConfig(c.Context, name); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Config '%s' reset to its defaults.\n", name)
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
