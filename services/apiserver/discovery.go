package apiserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// kubeVersion is the Kubernetes API level kiln's API answers as: clients
// (kubectl, client-go) gate features on it. The build metadata says it is
// kiln and not a kube-apiserver.
var kubeVersion = version.Info{
	Major: "1", Minor: "37", EmulationMajor: "1", EmulationMinor: "37", MinCompatibilityMajor: "1", MinCompatibilityMinor: "36",
	GitVersion: "v1.37.2+kiln", GitTreeState: "clean",
	GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
}

// The aggregated discovery media type (KEP-3352) kubectl asks for first.
const (
	discoveryGroup = "apidiscovery.k8s.io"
	aggregatedType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
)

// statusSubresourceVerbs are the verbs of a CRD's status subresource.
var statusSubresourceVerbs = []string{"get", "patch", "update"}

// registerDiscovery serves Kubernetes' discovery documents for
// apiResources: /version (to anyone, as Kubernetes' public-info-viewer
// role), and to every authenticated caller /api, /api/v1, /apis,
// /apis/GROUP and /apis/GROUP/VERSION, plus the aggregated form of /api
// and /apis; and the OpenAPI documents. The documents are static: they
// are encoded once.
func (s *server) registerDiscovery(mux *http.ServeMux) {
	ver := mustDocument(kubeVersion)
	mux.HandleFunc("GET /version", ver.serve)

	legacyAgg := mustDocument(aggregatedList(""))
	mux.Handle("GET /api", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		if wantsAggregated(r) {
			legacyAgg.serveAs(w, r, aggregatedType)
			return
		}
		// serverAddressByClientCIDRs names the address the client used.
		writeJSON(w, http.StatusOK, k8smeta.APIVersions{
			TypeMeta: k8smeta.TypeMeta{Kind: "APIVersions"},
			Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []k8smeta.ServerAddressByClientCIDR{
				{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
			},
		})
	}))

	groups := apiGroups()
	list := k8smeta.APIGroupList{TypeMeta: k8smeta.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range groups {
		list.Groups = append(list.Groups, g.group)
	}
	groupList, groupsAgg := mustDocument(list), mustDocument(aggregatedList("*"))
	mux.Handle("GET /apis", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		if wantsAggregated(r) {
			groupsAgg.serveAs(w, r, aggregatedType)
			return
		}
		groupList.serve(w, r)
	}))

	byGroup := map[string]document{}
	byGV := map[string]document{"v1": mustDocument(resourceList("", "v1"))}
	for _, g := range groups {
		doc := g.group
		doc.TypeMeta = k8smeta.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		byGroup[g.group.Name] = mustDocument(doc)
		for _, v := range g.group.Versions {
			byGV[v.GroupVersion] = mustDocument(resourceList(g.group.Name, v.Version))
		}
	}
	mux.Handle("GET /api/v1", s.authenticated(byGV["v1"].serve))
	mux.Handle("GET /apis/{group}", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		serveFrom(w, r, byGroup, r.PathValue("group"))
	}))
	mux.Handle("GET /apis/{group}/{version}", s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		serveFrom(w, r, byGV, r.PathValue("group")+"/"+r.PathValue("version"))
	}))
	s.registerOpenAPI(mux)
}

// authenticated admits every caller the server can name: discovery and
// OpenAPI describe the API, not its objects, and Kubernetes grants them to
// all authenticated users (system:discovery). Insecure servers admit all.
func (s *server) authenticated(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.Insecure {
			if _, err := s.authenticate(r); err != nil {
				s.fail(w, r, err, "", "")
				return
			}
		}
		h(w, r)
	})
}

// errNoResource is Kubernetes' answer to a path it serves nothing at.
var errNoResource = &httpError{code: http.StatusNotFound, reason: "NotFound",
	err: errors.New("the server could not find the requested resource")}

func serveFrom(w http.ResponseWriter, r *http.Request, docs map[string]document, key string) {
	d, ok := docs[key]
	if !ok {
		writeError(w, errNoResource, "", "")
		return
	}
	d.serve(w, r)
}

// wantsAggregated reports whether the client takes the aggregated
// discovery document before the plain one. kubectl offers v2 and v2beta1;
// kiln answers v2, which every client offering either understands.
func wantsAggregated(r *http.Request) bool {
	for _, mt := range acceptedTypes(r) {
		if mt.typ != "application/json" {
			continue // protobuf is not served
		}
		if mt.params["g"] == discoveryGroup && mt.params["as"] == "APIGroupDiscoveryList" &&
			(mt.params["v"] == "v2" || mt.params["v"] == "v2beta1") {
			return true
		}
		if mt.params["as"] == "" {
			return false
		}
	}
	return false
}

// document is an encoded JSON answer with its entity tag, so clients that
// cache (kubectl's discovery cache) revalidate with If-None-Match.
type document struct {
	body []byte
	etag string
}

func mustDocument(v any) document {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode discovery document: %v", err))
	}
	sum := sha256.Sum256(b)
	return document{body: append(b, '\n'), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

func (d document) serve(w http.ResponseWriter, r *http.Request) {
	d.serveAs(w, r, "application/json")
}

func (d document) serveAs(w http.ResponseWriter, r *http.Request, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("ETag", d.etag)
	if r.Header.Get("If-None-Match") == d.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(d.body)
}

// apiGroup is one named group of apiResources with its versions, the
// preferred (first listed) first.
type apiGroup struct {
	group k8smeta.APIGroup
}

// apiGroups lists the named groups in the order apiResources first names
// them; each group's versions in the order they appear there.
func apiGroups() []apiGroup {
	var out []apiGroup
	idx := map[string]int{}
	for _, a := range apiResources {
		if a.Group == "" {
			continue
		}
		i, ok := idx[a.Group]
		if !ok {
			i = len(out)
			idx[a.Group] = i
			gv := k8smeta.GroupVersionForDiscovery{GroupVersion: a.GroupVersion(), Version: a.Version}
			out = append(out, apiGroup{group: k8smeta.APIGroup{Name: a.Group, PreferredVersion: gv}})
		}
		g := &out[i].group
		seen := false
		for _, v := range g.Versions {
			seen = seen || v.Version == a.Version
		}
		if !seen {
			g.Versions = append(g.Versions, k8smeta.GroupVersionForDiscovery{GroupVersion: a.GroupVersion(), Version: a.Version})
		}
	}
	return out
}

// sortedResources are the resources of group/version by name, the order
// Kubernetes lists them in.
func sortedResources(group, ver string) []apiResource {
	var out []apiResource
	for _, a := range apiResources {
		if a.Group == group && a.Version == ver {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(x, y apiResource) int { return strings.Compare(x.Resource, y.Resource) })
	return out
}

// resourceList is the APIResourceList of group/version: each resource,
// then its subresources as "resource/sub".
func resourceList(group, ver string) k8smeta.APIResourceList {
	gv := ver
	if group != "" {
		gv = group + "/" + ver
	}
	l := k8smeta.APIResourceList{TypeMeta: k8smeta.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv,
		APIResources: []k8smeta.APIResource{}}
	for _, a := range sortedResources(group, ver) {
		l.APIResources = append(l.APIResources, k8smeta.APIResource{
			Name: a.Resource, SingularName: a.Singular, Namespaced: a.Namespaced, Kind: a.Kind,
			Verbs: a.Verbs, ShortNames: a.ShortNames, Categories: a.Categories,
		})
		for _, sub := range a.Subresources {
			l.APIResources = append(l.APIResources, k8smeta.APIResource{
				Name: a.Resource + "/" + sub, Namespaced: a.Namespaced, Kind: subresourceKind(a, sub), Verbs: subresourceVerbs(sub),
			})
		}
	}
	return l
}

// aggregatedList is the aggregated discovery document: of the core group
// alone for group "" (/api), of every named group for "*" (/apis).
func aggregatedList(group string) apidiscoveryv2.APIGroupDiscoveryList {
	l := apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: k8smeta.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: discoveryGroup + "/v2"},
		Items:    []apidiscoveryv2.APIGroupDiscovery{},
	}
	var names []string
	if group == "" {
		names = []string{""}
	} else {
		for _, g := range apiGroups() {
			names = append(names, g.group.Name)
		}
	}
	for _, name := range names {
		item := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: k8smeta.ObjectMeta{Name: name}}
		var versions []string
		if name == "" {
			versions = []string{"v1"}
		}
		for _, g := range apiGroups() {
			if g.group.Name == name {
				for _, v := range g.group.Versions {
					versions = append(versions, v.Version)
				}
			}
		}
		for _, v := range versions {
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
				Resources: []apidiscoveryv2.APIResourceDiscovery{}}
			for _, a := range sortedResources(name, v) {
				kind := &k8smeta.GroupVersionKind{Group: a.Group, Version: a.Version, Kind: a.Kind}
				scope := apidiscoveryv2.ScopeCluster
				if a.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				rd := apidiscoveryv2.APIResourceDiscovery{Resource: a.Resource, ResponseKind: kind, Scope: scope,
					SingularResource: a.Singular, Verbs: a.Verbs, ShortNames: a.ShortNames, Categories: a.Categories}
				for _, sub := range a.Subresources {
					sk := kind
					if sub != "status" {
						sk = &k8smeta.GroupVersionKind{Kind: subresourceKind(a, sub)}
					}
					rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource: sub, ResponseKind: sk, Verbs: subresourceVerbs(sub)})
				}
				vd.Resources = append(vd.Resources, rd)
			}
			item.Versions = append(item.Versions, vd)
		}
		l.Items = append(l.Items, item)
	}
	return l
}

// subresourceVerbs are the verbs of a subresource: status is read and
// written, a pod's log only read.
func subresourceVerbs(sub string) []string {
	if sub == "log" {
		return []string{"get"}
	}
	return statusSubresourceVerbs
}

// subresourceKind is what a subresource answers, as Kubernetes' discovery
// names it: the object for status, a plain string for a pod's log.
func subresourceKind(a apiResource, sub string) string {
	if sub == "log" {
		return "Pod"
	}
	return a.Kind
}
