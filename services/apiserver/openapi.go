package apiserver

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

// The OpenAPI v2 protobuf media types. Clients ask for either spelling
// (client-go still sends the "@" one); the answer always carries the
// dotted one, as kube-apiserver's does, because the "@" is not a token
// character and Go's mime parser (so client-go's content-type check)
// rejects it.
const (
	openAPIV2Protobuf           = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	openAPIV2ProtobufDeprecated = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
)

// openAPIDocs are the published OpenAPI v3 documents, derived from
// apiResources and kiln's Go types once, on first use.
type openAPIDocs struct {
	index  document
	byGV   map[string]document // "api/v1", "apis/GROUP/VERSION"
	hashes map[string]string
}

// swaggerDocs is the Swagger 2.0 document, as JSON and as protobuf.
type swaggerDocs struct {
	json, pb document
	err      error
}

var (
	loadOpenAPI = sync.OnceValue(buildOpenAPI)
	loadSwagger = sync.OnceValue(buildSwagger)
)

func buildOpenAPI() *openAPIDocs {
	d := &openAPIDocs{byGV: map[string]document{}, hashes: map[string]string{}}
	index := map[string]any{}
	for _, gv := range servedGroupVersions() {
		doc := mustDocument(openAPIV3(gv.group, gv.version))
		sum := sha512.Sum512(doc.body)
		hash := strings.ToUpper(hex.EncodeToString(sum[:]))
		d.byGV[gv.path()], d.hashes[gv.path()] = doc, hash
		index[gv.path()] = map[string]any{"serverRelativeURL": "/openapi/v3/" + gv.path() + "?hash=" + hash}
	}
	d.index = mustDocument(map[string]any{"paths": index})
	return d
}

func buildSwagger() *swaggerDocs {
	d := &swaggerDocs{json: mustDocument(openAPIV2())}
	parsed, err := openapiv2.ParseDocument(d.json.body)
	if err != nil {
		d.err = fmt.Errorf("OpenAPI v2 document does not parse: %w", err)
		return d
	}
	pb, err := proto.Marshal(parsed)
	if err != nil {
		d.err = fmt.Errorf("encode OpenAPI v2 document: %w", err)
		return d
	}
	d.pb = document{body: pb, etag: strings.TrimSuffix(d.json.etag, `"`) + `-pb"`}
	return d
}

// registerOpenAPI serves /openapi/v2 (JSON, or protobuf when asked first)
// and /openapi/v3 (the index, then one document per group version, which
// clients fetch by the hash the index names and may cache for good) to
// every authenticated caller.
func (s *server) registerOpenAPI(mux *http.ServeMux) {
	mux.Handle("GET /openapi/v2", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		docs := loadSwagger()
		if docs.err != nil {
			s.fail(w, r, docs.err, "", "")
			return
		}
		for _, mt := range acceptedTypes(r) {
			switch mt.typ {
			case openAPIV2Protobuf, openAPIV2ProtobufDeprecated:
				docs.pb.serveAs(w, r, openAPIV2Protobuf)
				return
			case "application/json", "*/*", "application/*":
				docs.json.serve(w, r)
				return
			}
		}
		if len(acceptedTypes(r)) == 0 {
			docs.json.serve(w, r)
			return
		}
		writeError(w, &httpError{code: http.StatusNotAcceptable, reason: "NotAcceptable",
			err: fmt.Errorf("only the following media types are accepted: application/json, %s", openAPIV2Protobuf)}, "", "")
	}))
	mux.Handle("GET /openapi/v3", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		loadOpenAPI().index.serve(w, r)
	}))
	mux.Handle("GET /openapi/v3/{path...}", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		docs := loadOpenAPI()
		p := r.PathValue("path")
		doc, ok := docs.byGV[p]
		if !ok {
			writeError(w, errNoResource, "", "")
			return
		}
		if h := r.URL.Query().Get("hash"); h != "" {
			if h != docs.hashes[p] {
				// A stale hash: send the client to the current document.
				w.Header().Set("Location", "/openapi/v3/"+p+"?hash="+docs.hashes[p])
				w.WriteHeader(http.StatusMovedPermanently)
				return
			}
			w.Header().Set("Cache-Control", "public, immutable, max-age=31536000")
		} else {
			w.Header().Set("Cache-Control", "no-cache, private")
		}
		doc.serve(w, r)
	}))
}

// groupVersion is one served group version.
type groupVersion struct{ group, version string }

// path is the group version's key in the OpenAPI v3 index.
func (gv groupVersion) path() string {
	if gv.group == "" {
		return "api/" + gv.version
	}
	return "apis/" + gv.group + "/" + gv.version
}

func servedGroupVersions() []groupVersion {
	var out []groupVersion
	seen := map[groupVersion]bool{}
	for _, a := range apiResources {
		gv := groupVersion{a.Group, a.Version}
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

// schemaName is Kubernetes' OpenAPI name of a kind: the group reversed,
// then version and kind (dev.knative.serving.v1.Service); core kinds are
// io.k8s.api.core.v1.KIND.
func schemaName(group, version, kind string) string {
	if group == "" {
		return "io.k8s.api.core." + version + "." + kind
	}
	parts := strings.Split(group, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + version + "." + kind
}

// openAPIV3 is the document of one group version: its kinds, their lists,
// the meta schemas they use, and the operations on every path.
func openAPIV3(group, version string) map[string]any {
	g := newSchemaGen(true)
	paths := map[string]any{}
	for _, a := range apiResources {
		if a.Group != group || a.Version != version {
			continue
		}
		addKind(g, a)
		for p, item := range resourcePaths(g, a) {
			paths[p] = item
		}
	}
	addMetaSchemas(g)
	return map[string]any{
		"openapi":    "3.0.0",
		"info":       map[string]any{"title": "Kubernetes", "version": kubeVersion.GitVersion},
		"paths":      paths,
		"components": map[string]any{"schemas": g.defs},
	}
}

// openAPIV2 is the Swagger 2.0 document of every served group version.
func openAPIV2() map[string]any {
	g := newSchemaGen(false)
	paths := map[string]any{}
	for _, a := range apiResources {
		addKind(g, a)
		for p, item := range resourcePaths(g, a) {
			paths[p] = item
		}
	}
	addMetaSchemas(g)
	return map[string]any{
		"swagger":     "2.0",
		"info":        map[string]any{"title": "Kubernetes", "version": kubeVersion.GitVersion},
		"paths":       paths,
		"definitions": g.defs,
	}
}

// addKind publishes a's kind and its list.
func addKind(g *schemaGen, a apiResource) {
	name := schemaName(a.Group, a.Version, a.Kind)
	if _, ok := g.defs[name]; ok {
		return
	}
	g.defs[name] = g.kindSchema(a.Group, a.Version, a.Kind)
	g.defs[name+"List"] = jsonSchema{
		"type":     "object",
		"required": []any{"items"},
		"properties": map[string]any{
			"apiVersion": jsonSchema{"type": "string", "description": "The versioned schema of this representation of an object."},
			"kind":       jsonSchema{"type": "string", "description": "The REST resource this object represents."},
			"items":      jsonSchema{"type": "array", "items": jsonSchema{"$ref": g.refPrefix + name}, "description": "List of " + a.Resource + "."},
			"metadata":   g.ref(metaPrefix+"ListMeta", "Standard list metadata."),
		},
		"x-kubernetes-group-version-kind": []any{map[string]any{"group": a.Group, "version": a.Version, "kind": a.Kind + "List"}},
	}
}

// addMetaSchemas publishes the meta types the operations name.
func addMetaSchemas(g *schemaGen) {
	str := jsonSchema{"type": "string"}
	g.defs[metaPrefix+"ListMeta"] = jsonSchema{"type": "object", "description": "Metadata of a list: where to continue it and the revision to watch from.",
		"properties": map[string]any{"continue": str, "remainingItemCount": jsonSchema{"type": "integer", "format": "int64"}, "resourceVersion": str, "selfLink": str}}
	g.defs[metaPrefix+"Patch"] = jsonSchema{"type": "object", "description": "The body of a PATCH request, in the format its Content-Type names."}
	g.defs[metaPrefix+"StatusCause"] = jsonSchema{"type": "object", "properties": map[string]any{"field": str, "message": str, "reason": str}}
	g.defs[metaPrefix+"StatusDetails"] = jsonSchema{"type": "object", "properties": map[string]any{
		"causes": jsonSchema{"type": "array", "items": jsonSchema{"$ref": g.refPrefix + metaPrefix + "StatusCause"}},
		"group":  str, "kind": str, "name": str, "uid": str, "retryAfterSeconds": jsonSchema{"type": "integer", "format": "int32"}}}
	g.defs[metaPrefix+"Status"] = jsonSchema{"type": "object", "description": "The result of an operation that returns no object, and every error.",
		"properties": map[string]any{
			"apiVersion": str, "kind": str, "code": jsonSchema{"type": "integer", "format": "int32"},
			"details": g.ref(metaPrefix+"StatusDetails", ""),
			"message": str, "reason": str, "status": str,
			"metadata": g.ref(metaPrefix+"ListMeta", ""),
		},
		"x-kubernetes-group-version-kind": []any{map[string]any{"group": "", "version": "v1", "kind": "Status"}}}
	g.defs[metaPrefix+"DeleteOptions"] = jsonSchema{"type": "object", "properties": map[string]any{
		"apiVersion": str, "kind": str, "dryRun": jsonSchema{"type": "array", "items": str},
		"gracePeriodSeconds": jsonSchema{"type": "integer", "format": "int64"}, "propagationPolicy": str}}
}

// resourcePaths are the operations on a's paths, by the verbs it serves.
func resourcePaths(g *schemaGen, a apiResource) map[string]any {
	base := a.BasePath()
	coll, all := base+"/"+a.Resource, ""
	if a.Namespaced {
		all = coll
		coll = base + "/namespaces/{namespace}/" + a.Resource
	}
	item := coll + "/{name}"
	kind := schemaName(a.Group, a.Version, a.Kind)
	scope := ""
	if a.Namespaced {
		scope = "Namespaced"
	}
	id := func(verb, suffix string) string {
		return verb + opGroup(a.Group) + strings.ToUpper(a.Version[:1]) + a.Version[1:] + suffix
	}
	has := map[string]bool{}
	for _, v := range a.Verbs {
		has[v] = true
	}
	p := opBuilder{g: g, gvk: map[string]any{"group": a.Group, "version": a.Version, "kind": a.Kind}}
	paths := map[string]any{}
	ops := map[string]any{}
	if has["list"] {
		ops["get"] = p.op("list", id("list", scope+a.Kind), listParams, nil, 200, kind+"List")
	}
	if has["create"] {
		ops["post"] = p.op("post", id("create", scope+a.Kind), writeParams, p.body(kind, false), 201, kind)
	}
	if has["deletecollection"] {
		ops["delete"] = p.op("deletecollection", id("deletecollection", scope+a.Kind), listParams, nil, 200, metaPrefix+"Status")
	}
	p.add(paths, coll, ops, a.Namespaced, false)
	ops = map[string]any{}
	if has["get"] {
		ops["get"] = p.op("get", id("read", scope+a.Kind), nil, nil, 200, kind)
	}
	if has["update"] {
		ops["put"] = p.op("put", id("replace", scope+a.Kind), writeParams, p.body(kind, false), 200, kind)
	}
	if has["patch"] {
		ops["patch"] = p.op("patch", id("patch", scope+a.Kind), patchParams, p.body(metaPrefix+"Patch", true), 200, kind)
	}
	if has["delete"] {
		ops["delete"] = p.op("delete", id("delete", scope+a.Kind), []string{"dryRun", "gracePeriodSeconds", "propagationPolicy"}, nil, 200, metaPrefix+"Status")
	}
	p.add(paths, item, ops, a.Namespaced, true)
	for _, sub := range a.Subresources {
		if sub != "status" {
			continue // a pod's log is text, not an object
		}
		suffix := strings.ToUpper(sub[:1]) + sub[1:]
		p.add(paths, item+"/"+sub, map[string]any{
			"get":   p.op("get", id("read", scope+a.Kind+suffix), nil, nil, 200, kind),
			"put":   p.op("put", id("replace", scope+a.Kind+suffix), writeParams, p.body(kind, false), 200, kind),
			"patch": p.op("patch", id("patch", scope+a.Kind+suffix), patchParams, p.body(metaPrefix+"Patch", true), 200, kind),
		}, a.Namespaced, true)
	}
	if all != "" && has["list"] {
		p.add(paths, all, map[string]any{
			"get": p.op("list", id("list", a.Kind+"ForAllNamespaces"), listParams, nil, 200, kind+"List"),
		}, false, false)
	}
	return paths
}

// opGroup is the group as operation IDs spell it: ServingKnativeDev, Core.
func opGroup(group string) string {
	if group == "" {
		return "Core"
	}
	var b strings.Builder
	for _, part := range strings.FieldsFunc(group, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// The query parameters of each kind of operation: kubectl looks for
// fieldValidation on PATCH to decide it may leave validation to the server.
var (
	listParams  = []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"}
	writeParams = []string{"dryRun", "fieldManager", "fieldValidation"}
	patchParams = []string{"dryRun", "fieldManager", "fieldValidation", "force"}
)

var paramTypes = map[string]string{
	"allowWatchBookmarks": "boolean", "watch": "boolean", "force": "boolean", "sendInitialEvents": "boolean",
	"limit": "integer", "timeoutSeconds": "integer", "gracePeriodSeconds": "integer",
}

var paramDescriptions = map[string]string{
	"dryRun":          "When present (All), the request is checked and answered but nothing is stored.",
	"fieldManager":    "The name of the actor making the change, for field ownership.",
	"fieldValidation": "How to treat fields the schema does not know: Ignore, Warn or Strict.",
	"labelSelector":   "Only objects whose labels match this selector.",
	"fieldSelector":   "Only objects whose fields match this selector.",
	"watch":           "Stream changes instead of listing.",
	"resourceVersion": "The revision to list at or watch from.",
}

// opBuilder builds operations of one kind, in the document's version.
type opBuilder struct {
	g   *schemaGen
	gvk map[string]any
}

func (p opBuilder) param(name, in string, required bool) map[string]any {
	typ := paramTypes[name]
	if typ == "" {
		typ = "string"
	}
	m := map[string]any{"name": name, "in": in, "uniqueItems": true}
	if in == "path" {
		m["description"] = "name of the " + map[string]string{"name": "object", "namespace": "namespace"}[name]
	} else if d := paramDescriptions[name]; d != "" {
		m["description"] = d
	}
	if required {
		m["required"] = true
	}
	if p.g.v3 {
		m["schema"] = map[string]any{"type": typ}
		delete(m, "uniqueItems")
	} else {
		m["type"] = typ
	}
	return m
}

// body is the request body of a write: the kind, or a patch.
func (p opBuilder) body(name string, patch bool) map[string]any {
	types := []string{"application/json", "application/yaml"}
	if patch {
		// No strategic merge patch, as for a CRD: kubectl apply sends one
		// only to a PATCH that lists it, and a merge patch otherwise.
		types = []string{"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"}
	}
	ref := map[string]any{"$ref": p.g.refPrefix + name}
	if !p.g.v3 {
		return map[string]any{"name": "body", "in": "body", "required": true, "schema": ref, "x-consumes": types}
	}
	content := map[string]any{}
	for _, t := range types {
		content[t] = map[string]any{"schema": ref}
	}
	return map[string]any{"content": content, "required": true}
}

func (p opBuilder) op(action, id string, query []string, body map[string]any, code int, resp string) map[string]any {
	ref := map[string]any{"$ref": p.g.refPrefix + resp}
	var params []any
	for _, q := range query {
		params = append(params, p.param(q, "query", false))
	}
	o := map[string]any{
		"operationId":                     id,
		"x-kubernetes-action":             action,
		"x-kubernetes-group-version-kind": p.gvk,
	}
	ok := map[string]any{"description": "OK"}
	if code == 201 {
		ok["description"] = "Created"
	}
	if p.g.v3 {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref}, "application/yaml": map[string]any{"schema": ref}}
		if body != nil {
			o["requestBody"] = body
		}
	} else {
		ok["schema"] = ref
		o["produces"] = []any{"application/json", "application/yaml"}
		if body != nil {
			o["consumes"] = body["x-consumes"]
			b := map[string]any{}
			for k, v := range body {
				if k != "x-consumes" {
					b[k] = v
				}
			}
			params = append(params, b)
		}
	}
	if params != nil {
		o["parameters"] = params
	}
	o["responses"] = map[string]any{fmt.Sprint(code): ok, "401": map[string]any{"description": "Unauthorized"}}
	return o
}

// add puts a path item with its path parameters, unless it has no operation.
func (p opBuilder) add(paths map[string]any, path string, ops map[string]any, namespaced, named bool) {
	if len(ops) == 0 {
		return
	}
	var params []any
	if named {
		params = append(params, p.param("name", "path", true))
	}
	if namespaced {
		params = append(params, p.param("namespace", "path", true))
	}
	if params != nil {
		ops["parameters"] = params
	}
	paths[path] = ops
}
