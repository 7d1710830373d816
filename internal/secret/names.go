package secret

import (
	"fmt"
	"regexp"

	"github.com/kiln-serving/kiln/api/errdefs"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// checkNames refuses a namespace or name that is not a DNS-1123 label
// before it becomes part of a store key: with "/" or ".." two different
// namespace/name pairs could name the same key. An empty namespace is
// allowed where listing means "all namespaces" (List only).
func checkNames(ns, name string) error {
	for _, f := range []struct{ what, v string }{{"namespace", ns}, {"name", name}} {
		if len(f.v) > 63 || !dns1123Label.MatchString(f.v) {
			return fmt.Errorf("secret %s %q: must be a DNS-1123 label: %w", f.what, f.v, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
