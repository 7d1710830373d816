package service

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/urfave/cli/v2"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// applyRevisionName sets the template name from --revision-name, as kn
// does: {{.Service}}, {{.Generation}} and {{.Random N}} are expanded and
// the service name is prepended when the result lacks the "<service>-"
// prefix Knative requires. gen is the generation the write will create.
func applyRevisionName(c *cli.Context, s *v1.Service, gen int64) error {
	if !c.IsSet("revision-name") {
		return nil
	}
	name := c.String("revision-name")
	if name == "" {
		s.Spec.Template.Metadata.Name = ""
		return nil
	}
	tpl, err := template.New("revision-name").Funcs(template.FuncMap{}).Parse(name)
	if err != nil {
		return fmt.Errorf("invalid --revision-name %q: %v", name, err)
	}
	var b bytes.Buffer
	data := revisionNameData{Service: s.Metadata.Name, Generation: gen}
	if err := tpl.Execute(&b, data); err != nil {
		return fmt.Errorf("invalid --revision-name %q: %v", name, err)
	}
	name = b.String()
	if !strings.HasPrefix(name, s.Metadata.Name+"-") {
		name = s.Metadata.Name + "-" + name
	}
	s.Spec.Template.Metadata.Name = name
	return nil
}

type revisionNameData struct {
	Service    string
	Generation int64
}

// Random returns n random lower-case letters and digits.
func (revisionNameData) Random(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// trafficFlags reads --traffic, --tag and --untag (those the command has).
func trafficFlags(c *cli.Context) *TrafficFlags {
	f := &TrafficFlags{Tags: splitFlag(c.StringSlice("tag"))}
	if c.Command.Name == "update" {
		f.Percentages = splitFlag(c.StringSlice("traffic"))
		f.Untags = splitFlag(c.StringSlice("untag"))
	}
	return f
}

func templateJSON(s *v1.Service) string {
	b, _ := json.Marshal(s.Spec.Template)
	return string(b)
}
