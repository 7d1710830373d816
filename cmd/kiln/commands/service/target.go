package service

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// targetFlag is kn's offline mode: work on a local descriptor instead of
// the cluster.
var targetFlag = &cli.StringFlag{Name: "target", Usage: "work offline on a service descriptor: a directory (holding NAMESPACE/ksvc/NAME.yaml) or a .yaml, .yml or .json file"}

// targetPath resolves --target to the descriptor file of ns/name: a path
// ending in .yaml, .yml or .json is the file itself; anything else is the
// root of a NAMESPACE/ksvc/NAME.yaml tree.
func targetPath(target, ns, name string) string {
	switch strings.ToLower(filepath.Ext(target)) {
	case ".yaml", ".yml", ".json":
		return target
	}
	return filepath.Join(target, ns, "ksvc", name+".yaml")
}

// descriptor renders s the way kn writes offline descriptors: the object as
// the user described it (no server defaults), with Kubernetes' empty
// creationTimestamp and status.
func descriptor(s *v1.Service, asJSON bool) ([]byte, error) {
	cp := *s
	cp.APIVersion, cp.Kind = v1.APIVersion, v1.KindService
	b, err := json.Marshal(&cp)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["status"] = map[string]any{}
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	meta["creationTimestamp"] = nil
	for _, k := range []string{"uid", "resourceVersion", "generation"} {
		delete(meta, k)
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			tm, _ := tmpl["metadata"].(map[string]any)
			if tm == nil {
				tm = map[string]any{}
				tmpl["metadata"] = tm
			}
			tm["creationTimestamp"] = nil
		}
	}
	if asJSON {
		out, err := json.MarshalIndent(m, "", "  ")
		return append(out, '\n'), err
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}

// writeDescriptor writes s to its --target location.
func writeDescriptor(target string, s *v1.Service) error {
	p := targetPath(target, s.Metadata.Namespace, s.Metadata.Name)
	b, err := descriptor(s, strings.EqualFold(filepath.Ext(p), ".json"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// readTarget reads the descriptor of ns/name under --target.
func readTarget(target, ns, name string) (*v1.Service, error) {
	p := targetPath(target, ns, name)
	if _, err := os.Stat(p); os.IsNotExist(err) {
		return nil, fmt.Errorf("service '%s' not found in namespace '%s' (no file %s)", name, ns, p)
	}
	s, err := readDescriptor(p)
	if err != nil {
		return nil, err
	}
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = ns
	}
	return s, nil
}
