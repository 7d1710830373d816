package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strings"

	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// tableVersion returns the meta.k8s.io version of the Table form the client
// asked for first (Accept: application/json;as=Table;v=v1;g=meta.k8s.io),
// or "" when it did not ask for one before plain JSON.
func tableVersion(r *http.Request) string {
	for _, mt := range acceptedTypes(r) {
		if mt.typ != "application/json" && mt.typ != "*/*" && mt.typ != "application/*" {
			continue
		}
		as, g, v := mt.params["as"], mt.params["g"], mt.params["v"]
		if as == "" {
			return "" // plain JSON comes first
		}
		if as == "Table" && g == "meta.k8s.io" && (v == "v1" || v == "v1beta1") {
			return v
		}
	}
	return ""
}

// wantsTable reports whether the client asked for the Table form
// (Accept: application/json;as=Table;v=v1;g=meta.k8s.io).
func wantsTable(r *http.Request) bool { return tableVersion(r) != "" }

// acceptedType is one entry of an Accept header.
type acceptedType struct {
	typ    string
	params map[string]string
}

// acceptedTypes splits the Accept header into its media types, in the
// client's order (kubectl lists them by preference and sends no q values).
func acceptedTypes(r *http.Request) []acceptedType {
	var out []acceptedType
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			part = strings.TrimSpace(part)
			typ, params, err := mime.ParseMediaType(part)
			if err != nil {
				// OpenAPI's protobuf type has an "@", no token character.
				typ, _, _ = strings.Cut(part, ";")
				typ, params = strings.ToLower(strings.TrimSpace(typ)), nil
			}
			out = append(out, acceptedType{typ: typ, params: params})
		}
	}
	return out
}

// includeObject reads ?includeObject= (None, Metadata: the default, Object).
func includeObject(r *http.Request) (k8smeta.IncludeObjectPolicy, error) {
	switch v := k8smeta.IncludeObjectPolicy(r.URL.Query().Get("includeObject")); v {
	case "":
		return k8smeta.IncludeMetadata, nil
	case k8smeta.IncludeNone, k8smeta.IncludeMetadata, k8smeta.IncludeObject:
		return v, nil
	default:
		return "", badRequest(fmt.Errorf("includeObject=%q: must be one of None, Metadata or Object: %w", v, errdefs.ErrInvalidArgument))
	}
}

// writeTable answers a get or list in the Table form: one row per object
// with a's printer columns. objs are the objects as they would be returned
// in JSON; listRV and cont are the list's resourceVersion and continue token.
func writeTable(w http.ResponseWriter, r *http.Request, a apiResource, objs []any, listRV, cont string) {
	t, err := tableFor(r, a, objs, false)
	if err != nil {
		writeError(w, err, a.Kind, "")
		return
	}
	t.ResourceVersion, t.Continue = listRV, cont
	if listRV == "" && len(t.Rows) == 1 {
		// A get: the Table carries the object's resourceVersion.
		t.ResourceVersion = rowResourceVersion(objs[0])
	}
	w.Header().Set("Content-Type", "application/json;as=Table;v="+t.APIVersion[len("meta.k8s.io/"):]+";g=meta.k8s.io")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(t)
}

// tableFor is the Table of objs in the version and with the rows' objects
// r asks for. noHeaders leaves out the column definitions, for the events
// of a watch in the Table form after the first.
func tableFor(r *http.Request, a apiResource, objs []any, noHeaders bool) (*k8smeta.Table, error) {
	policy, err := includeObject(r)
	if err != nil {
		return nil, err
	}
	t, err := buildTable(a, objs, policy)
	if err != nil {
		return nil, err
	}
	v := tableVersion(r)
	if v == "" {
		v = "v1"
	}
	t.APIVersion, t.Kind = "meta.k8s.io/"+v, "Table"
	if noHeaders {
		t.ColumnDefinitions = nil
	}
	return t, nil
}

// nameDescription is how Kubernetes describes a Table's NAME column.
var nameDescription = k8smeta.ObjectMeta{}.SwaggerDoc()["name"]

// buildTable evaluates a's columns over objs as Kubernetes' CRD table
// convertor does: string columns printed through the JSONPath, other types
// converted from the JSON value, a missing value a nil cell.
func buildTable(a apiResource, objs []any, policy k8smeta.IncludeObjectPolicy) (*k8smeta.Table, error) {
	t := &k8smeta.Table{ColumnDefinitions: []k8smeta.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: nameDescription},
	}}
	paths := make([]*jsonpath.JSONPath, len(a.Columns))
	for i, c := range a.Columns {
		desc := c.Description
		if desc == "" {
			desc = "Custom resource definition column (in JSONPath format): " + c.JSONPath
		}
		t.ColumnDefinitions = append(t.ColumnDefinitions, k8smeta.TableColumnDefinition{
			Name: c.Name, Type: c.Type, Format: c.Format, Description: desc, Priority: c.Priority})
		if c.Value != nil {
			continue
		}
		p := jsonpath.New(c.Name).AllowMissingKeys(true)
		if err := p.Parse("{" + c.JSONPath + "}"); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		paths[i] = p
	}
	t.Rows = make([]k8smeta.TableRow, 0, len(objs))
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", a.Kind, err)
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("decode %s: %w", a.Kind, err)
		}
		row := k8smeta.TableRow{Cells: []any{lookupString(obj, "metadata", "name")}}
		for i, c := range a.Columns {
			row.Cells = append(row.Cells, cell(c, paths[i], obj))
		}
		switch policy {
		case k8smeta.IncludeObject:
			row.Object = runtime.RawExtension{Raw: raw}
		case k8smeta.IncludeMetadata:
			pom := map[string]any{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
			b, err := json.Marshal(pom)
			if err != nil {
				return nil, err
			}
			row.Object = runtime.RawExtension{Raw: b}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func cell(c printerColumn, p *jsonpath.JSONPath, obj map[string]any) any {
	if c.Value != nil {
		return c.Value(obj)
	}
	results, err := p.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	// Only simple paths are declared: the first result is the value.
	value := results[0][0].Interface()
	if c.Type == "string" {
		var buf bytes.Buffer
		if err := p.PrintResults(&buf, []reflect.Value{reflect.ValueOf(value)}); err != nil {
			return nil
		}
		return buf.String()
	}
	return jsonCell(c.Type, value)
}

// jsonCell converts a JSON value to the cell of a column of type typ.
func jsonCell(typ string, value any) any {
	switch typ {
	case "integer":
		switch v := value.(type) {
		case json.Number:
			if i, err := v.Int64(); err == nil {
				return i
			}
		case float64:
			return int64(v)
		}
	case "number":
		switch v := value.(type) {
		case json.Number:
			if f, err := v.Float64(); err == nil {
				return f
			}
		case float64:
			return v
		}
	case "boolean":
		if b, ok := value.(bool); ok {
			return b
		}
	case "date":
		if s, ok := value.(string); ok {
			return dateCell(s)
		}
	}
	return nil
}

// dateCell is a timestamp as kubectl shows an age ("5m"), "<unknown>"
// when absent, "<invalid>" when unparsable.
func dateCell(s string) any {
	var ts k8smeta.Time
	if s == "" {
		return metatable.ConvertToHumanReadableDateType(ts)
	}
	if err := ts.UnmarshalQueryParameter(s); err != nil {
		return "<invalid>"
	}
	return metatable.ConvertToHumanReadableDateType(ts)
}

// lookupString reads a string field of a JSON object by its path.
func lookupString(obj map[string]any, path ...string) string {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// rowResourceVersion reads an object's metadata.resourceVersion.
func rowResourceVersion(obj any) string {
	raw, err := json.Marshal(obj)
	if err != nil {
		return ""
	}
	var m struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &m)
	return m.Metadata.ResourceVersion
}
