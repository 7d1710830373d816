package v1

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// ValidateUpdate checks what only an update can get wrong, given the stored
// object old and the defaulted, validated new one of the same kind: a
// user-chosen revision name is the name of one immutable Revision, so the
// template may only change together with its name (Knative's
// "Saw the following changes without a name change").
func ValidateUpdate(_ context.Context, old, new Object) *FieldError {
	switch n := new.(type) {
	case *Service:
		if o, ok := old.(*Service); ok {
			return verifyNameChange(&o.Spec.Template, &n.Spec.Template).ViaField("spec", "template")
		}
	case *Configuration:
		if o, ok := old.(*Configuration); ok {
			return verifyNameChange(&o.Spec.Template, &n.Spec.Template).ViaField("spec", "template")
		}
	}
	return nil
}

// verifyNameChange reports a changed template that kept its user-chosen
// name; paths are relative to the template.
func verifyNameChange(old, new *RevisionTemplateSpec) *FieldError {
	if new.Metadata.Name == "" || new.Metadata.Name != old.Metadata.Name {
		return nil
	}
	diff := templateDiff(old, new)
	if diff == "" {
		return nil
	}
	return ErrGeneric("Saw the following changes without a name change (-old +new)", "metadata.name").WithDetails(diff)
}

// templateDiff lists the leaves that differ as "path: -old +new" lines.
func templateDiff(old, new *RevisionTemplateSpec) string {
	var a, b any
	ja, _ := json.Marshal(old)
	jb, _ := json.Marshal(new)
	_ = json.Unmarshal(ja, &a)
	_ = json.Unmarshal(jb, &b)
	var lines []string
	diffValues("", a, b, &lines)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func diffValues(path string, a, b any, out *[]string) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diffValues(p, am[k], bm[k], out)
		}
		return
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			diffValues(fmt.Sprintf("%s[%d]", path, i), as[i], bs[i], out)
		}
		return
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	*out = append(*out, fmt.Sprintf("{%s}: -%s +%s", path, ja, jb))
}
