package v1

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// Cause is one invalid field: its Knative-style path
// (spec.template.spec.containers[0].image) and what is wrong with it.
type Cause struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// Details elaborates, e.g. the (-old +new) diff of an immutable field.
	Details string `json:"details,omitempty"`
}

// FieldError collects every validation failure of an object, each with the
// path of the field at fault, the way Knative's apis.FieldError does.
//
// Builders return errors with paths relative to the value they check; the
// caller prefixes them with ViaField/ViaIndex as the error travels up, so a
// container validator never needs to know it sits under
// spec.template.spec. A nil *FieldError means "valid", and every method is
// nil-safe. FieldError matches errdefs.ErrInvalidArgument with errors.Is.
//
// Because Validate returns a *FieldError, assign it to an error only when it
// is non-nil; a typed nil inside an error interface is not nil.
type FieldError struct {
	causes []Cause
}

// ErrGeneric is a failure with a free-form message at paths (each may be "").
func ErrGeneric(msg string, paths ...string) *FieldError {
	if len(paths) == 0 {
		paths = []string{""}
	}
	fe := &FieldError{}
	for _, p := range paths {
		fe.causes = append(fe.causes, Cause{Field: p, Message: msg})
	}
	return fe
}

// ErrMissingField reports required fields that are absent or empty.
func ErrMissingField(paths ...string) *FieldError {
	return ErrGeneric("missing field(s)", paths...)
}

// ErrDisallowedFields reports fields the user must not set.
func ErrDisallowedFields(paths ...string) *FieldError {
	return ErrGeneric("must not set the field(s)", paths...)
}

// ErrInvalidValue reports a field whose value is wrong; details, when
// given, say why and are printed on the next line, as Knative's
// apis.ErrInvalidValue does.
func ErrInvalidValue(value any, path string, details ...string) *FieldError {
	fe := ErrGeneric(fmt.Sprintf("invalid value: %v", value), path)
	if d := strings.Join(details, ", "); d != "" {
		return fe.WithDetails(d)
	}
	return fe
}

// ErrOutOfBoundsValue reports a number outside [lower, upper].
func ErrOutOfBoundsValue(value, lower, upper any, path string) *FieldError {
	return ErrGeneric(fmt.Sprintf("expected %v <= %v <= %v", lower, value, upper), path)
}

// ErrMultipleOneOf reports that more than one of mutually exclusive fields is set.
func ErrMultipleOneOf(paths ...string) *FieldError {
	return ErrGeneric("expected exactly one, got both", paths...)
}

// ErrMissingOneOf reports that none of the alternatives is set.
func ErrMissingOneOf(paths ...string) *FieldError {
	return ErrGeneric("expected exactly one, got neither", paths...)
}

// WithDetails sets details on every cause of e.
func (e *FieldError) WithDetails(details string) *FieldError {
	if e == nil {
		return nil
	}
	out := &FieldError{causes: append([]Cause(nil), e.causes...)}
	for i := range out.causes {
		out.causes[i].Details = details
	}
	return out
}

// Also merges errs into e and returns the result; nil inputs are ignored
// and the result is nil when nothing failed.
func (e *FieldError) Also(errs ...*FieldError) *FieldError {
	var out []Cause
	if e != nil {
		out = append(out, e.causes...)
	}
	for _, o := range errs {
		if o != nil {
			out = append(out, o.causes...)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &FieldError{causes: out}
}

// ViaField prefixes every path with the given field names, outermost first:
// ErrMissingField("image").ViaField("spec", "template") → spec.template.image.
func (e *FieldError) ViaField(prefix ...string) *FieldError {
	if e == nil {
		return nil
	}
	out := &FieldError{causes: make([]Cause, len(e.causes))}
	p := strings.Join(prefix, ".")
	for i, c := range e.causes {
		switch {
		case p == "":
			out.causes[i] = c
		case c.Field == "":
			out.causes[i] = Cause{Field: p, Message: c.Message, Details: c.Details}
		case strings.HasPrefix(c.Field, "["):
			out.causes[i] = Cause{Field: p + c.Field, Message: c.Message, Details: c.Details}
		default:
			out.causes[i] = Cause{Field: p + "." + c.Field, Message: c.Message, Details: c.Details}
		}
	}
	return out
}

// ViaIndex prefixes every path with [i].
func (e *FieldError) ViaIndex(i int) *FieldError {
	if e == nil {
		return nil
	}
	out := &FieldError{causes: make([]Cause, len(e.causes))}
	idx := "[" + strconv.Itoa(i) + "]"
	for j, c := range e.causes {
		switch {
		case c.Field == "":
			out.causes[j] = Cause{Field: idx, Message: c.Message, Details: c.Details}
		case strings.HasPrefix(c.Field, "["):
			out.causes[j] = Cause{Field: idx + c.Field, Message: c.Message, Details: c.Details}
		default:
			out.causes[j] = Cause{Field: idx + "." + c.Field, Message: c.Message, Details: c.Details}
		}
	}
	return out
}

// ViaFieldIndex is ViaIndex(i).ViaField(field): containers[0].image.
func (e *FieldError) ViaFieldIndex(field string, i int) *FieldError {
	return e.ViaIndex(i).ViaField(field)
}

// Causes returns every failure, sorted by path so output is stable.
func (e *FieldError) Causes() []Cause {
	if e == nil {
		return nil
	}
	out := append([]Cause(nil), e.causes...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// Error renders one line per message, paths of the same message joined,
// as Knative prints them: "missing field(s): spec.template.spec.containers[0].image".
func (e *FieldError) Error() string {
	if e == nil {
		return ""
	}
	// Causes with the same message and details share a line, as
	// Knative merges them.
	type key struct{ msg, details string }
	var order []key
	paths := map[key][]string{}
	for _, c := range e.Causes() {
		k := key{c.Message, c.Details}
		if _, ok := paths[k]; !ok {
			order = append(order, k)
			paths[k] = []string{}
		}
		if c.Field != "" {
			paths[k] = append(paths[k], c.Field)
		}
	}
	lines := make([]string, 0, len(order))
	for _, k := range order {
		if ps := paths[k]; len(ps) > 0 {
			lines = append(lines, k.msg+": "+strings.Join(dedupe(ps), ", "))
		} else {
			lines = append(lines, k.msg)
		}
		if k.details != "" {
			lines = append(lines, k.details)
		}
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(fe, errdefs.ErrInvalidArgument) true, so edges map a
// FieldError to 422 Invalid without knowing this type.
func (e *FieldError) Is(target error) bool { return target == errdefs.ErrInvalidArgument }

func dedupe(ss []string) []string {
	out := ss[:0:0]
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
