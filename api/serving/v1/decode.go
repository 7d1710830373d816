package v1

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// Object is any serving.knative.dev/v1 kind: *Service, *Configuration,
// *Revision or *Route.
type Object interface {
	Meta() *metav1.ObjectMeta
	SetDefaults(context.Context)
	Validate(context.Context) *FieldError
}

var (
	_ Object = (*Service)(nil)
	_ Object = (*Configuration)(nil)
	_ Object = (*Revision)(nil)
	_ Object = (*Route)(nil)
)

// NewObject returns an empty object of kind, or an ErrInvalidArgument error.
func NewObject(kind string) (Object, error) {
	switch kind {
	case KindService:
		return &Service{}, nil
	case KindConfiguration:
		return &Configuration{}, nil
	case KindRevision:
		return &Revision{}, nil
	case KindRoute:
		return &Route{}, nil
	}
	return nil, fmt.Errorf("unsupported kind %q (want Service, Configuration, Revision or Route): %w", kind, errdefs.ErrInvalidArgument)
}

// Decode parses one JSON or YAML document strictly: apiVersion must be
// serving.knative.dev/v1, kind one of the four kinds, duplicate keys and
// unknown fields are rejected with the field's path named. Errors wrap
// errdefs.ErrInvalidArgument. Decode does not default or validate.
func Decode(data []byte) (Object, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("malformed document: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, fmt.Errorf("malformed document: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	m, ok := generic.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("malformed document: expected an object with apiVersion and kind: %w", errdefs.ErrInvalidArgument)
	}
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	if apiVersion == "" || kind == "" {
		return nil, fmt.Errorf("missing field(s): apiVersion, kind: %w", errdefs.ErrInvalidArgument)
	}
	if apiVersion != APIVersion {
		return nil, fmt.Errorf("unsupported apiVersion %q (want %s): %w", apiVersion, APIVersion, errdefs.ErrInvalidArgument)
	}
	obj, err := NewObject(kind)
	if err != nil {
		return nil, err
	}
	// encoding/json matches keys case-insensitively and names no path for
	// an unknown field, so walk the document against the type first.
	if unknown := unknownFields(reflect.TypeOf(obj).Elem(), generic, ""); len(unknown) > 0 {
		return nil, fmt.Errorf("unknown field(s): %s: %w", strings.Join(unknown, ", "), errdefs.ErrInvalidArgument)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("decode %s: %v: %w", kind, err, errdefs.ErrInvalidArgument)
	}
	return obj, nil
}

var (
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

// unknownFields lists the paths in v that type t has no field for.
func unknownFields(t reflect.Type, v any, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil // custom shapes (Time, IntOrString) check themselves
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type error; the decoder reports it
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				out = append(out, p)
				continue
			}
			out = append(out, unknownFields(ft, m[k], p)...)
		}
	case reflect.Slice, reflect.Array:
		s, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range s {
			out = append(out, unknownFields(t.Elem(), e, path+"["+strconv.Itoa(i)+"]")...)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for k, e := range m {
			out = append(out, unknownFields(t.Elem(), e, path+"."+k)...)
		}
		sort.Strings(out)
	}
	return out
}

// collectFields maps JSON names to field types, promoting the fields of
// embedded structs without a name (`json:",inline"`) as encoding/json does.
func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// SplitDocuments splits a multi-document YAML stream at "---" lines, or a
// JSON stream of objects (or one JSON array of objects) into its values.
// Empty documents (only blanks and comments) are dropped.
func SplitDocuments(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return splitJSON(trimmed)
	}
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if !blankYAML(cur.Bytes()) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t") || strings.HasPrefix(line, "---#") {
			flush()
			continue
		}
		if line == "..." {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("split documents: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	flush()
	return docs, nil
}

func blankYAML(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func splitJSON(data []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if len(raw) > 0 && raw[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("malformed JSON: %v: %w", err, errdefs.ErrInvalidArgument)
			}
			for _, it := range items {
				docs = append(docs, []byte(it))
			}
			continue
		}
		docs = append(docs, []byte(raw))
	}
}
