package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// OutputFlag is the -o flag every list and describe command takes.
var OutputFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output format: yaml or json (default: human-readable)"}

// Format returns the -o value, or an error for an unsupported one.
func Format(c *cli.Context) (string, error) {
	switch f := c.String("output"); f {
	case "", "yaml", "json":
		return f, nil
	default:
		return "", fmt.Errorf("invalid value %q for --output: use yaml or json", f)
	}
}

// Object writes v as YAML or JSON.
func Object(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// List writes items as a kind List document.
func List(w io.Writer, format, apiVersion, kind string, items any) error {
	return Object(w, format, map[string]any{"apiVersion": apiVersion, "kind": kind + "List", "items": items})
}

// Table is a tabwriter with kn's spacing.
func Table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }

// DescribeTable aligns kn's "Label:  value" describe headers.
func DescribeTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 12, 8, 2, ' ', 0) }

// Row writes cells tab-separated.
func Row(tw io.Writer, cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }

// Age renders how old t is, like kubectl: 5s, 3m, 2h, 4d.
func Age(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	d := now.Sub(t.Time)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// Conditions summarizes conditions as kn does: "3 OK / 4" counts the True
// ones; a False one adds "1 ERR", an Unknown one leaves it uncounted.
func Conditions(conds []metav1.Condition) string {
	ok, errs := 0, 0
	for _, c := range conds {
		switch c.Status {
		case metav1.ConditionTrue:
			ok++
		case metav1.ConditionFalse:
			if c.Severity == "" || c.Severity == "Error" {
				errs++
			}
		}
	}
	s := fmt.Sprintf("%d OK / %d", ok, len(conds))
	if errs > 0 {
		s = fmt.Sprintf("%d OK / %d ERR / %d", ok, errs, len(conds))
	}
	return s
}

// Ready returns the Ready condition's status and reason ("Unknown" when absent).
func Ready(st *metav1.Status) (string, string) {
	c := st.GetCondition("Ready")
	if c == nil {
		return string(metav1.ConditionUnknown), ""
	}
	return string(c.Status), c.Reason
}

// DescribeConditions writes a kn-style Conditions block.
func DescribeConditions(w io.Writer, conds []metav1.Condition, now time.Time) {
	fmt.Fprintln(w, "\nConditions:")
	tw := Table(w)
	Row(tw, "  OK", "TYPE", "AGE", "REASON")
	for _, c := range conds {
		sym := "??"
		switch c.Status {
		case metav1.ConditionTrue:
			sym = "++"
		case metav1.ConditionFalse:
			sym = "!!"
		}
		reason := c.Reason
		if c.Message != "" && c.Status != metav1.ConditionTrue {
			if reason != "" {
				reason += " "
			}
			reason += c.Message
		}
		Row(tw, "  "+sym, c.Type, Age(c.LastTransitionTime, now), reason)
	}
	tw.Flush()
}
