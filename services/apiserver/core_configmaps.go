package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

var configMapsGR = schema.GroupResource{Resource: "configmaps"}

// configMapBackend is where one family of ConfigMaps lives: kiln's cluster
// configs, shown as Knative's config-* ConfigMaps in knative-serving
// (clusterConfigMaps), or users' ConfigMaps in every namespace
// (userConfigMaps); configMaps picks one by namespace and name.
type configMapBackend interface {
	// get returns ns/name. Errors: a Kubernetes NotFound.
	get(ctx context.Context, ns, name string) (*corev1.ConfigMap, error)
	// list returns the ConfigMaps of ns ("" = every namespace), sorted.
	list(ctx context.Context, ns string) (*corev1.ConfigMapList, error)
	// create stores a new ConfigMap, or with dry only validates it and
	// answers what would be stored. Errors: Kubernetes AlreadyExists,
	// Invalid.
	create(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error)
	// update replaces ns/name (with dry, only validates); a set
	// resourceVersion is a compare-and-swap. Errors: Kubernetes NotFound,
	// Conflict, Invalid.
	update(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error)
	// delete removes ns/name. Errors: a Kubernetes NotFound.
	delete(ctx context.Context, ns, name string) error
}

// configPrefix is how Knative names its config ConfigMaps: config-<name>.
const configPrefix = "config-"

// clusterConfigMaps shows kiln's cluster configs (config/<name>) as the
// ConfigMaps config-<name> in knative-serving: data is the stored document
// (empty when every key is at its default), resourceVersion the config's
// etcd mod revision ("0" while not stored), and writes go through the same
// validation and compare-and-swap as the kiln.dev configs API. Deleting one
// puts every key back at its default; the ConfigMap itself always exists.
type clusterConfigMaps struct{ s *server }

var _ configMapBackend = clusterConfigMaps{}

// configName maps ns/name to a kiln config name, or "" when ns/name is not
// one of kiln's config ConfigMaps.
func configName(ns, name string) string {
	if ns != servingNamespace || !strings.HasPrefix(name, configPrefix) {
		return ""
	}
	n := strings.TrimPrefix(name, configPrefix)
	if config.DefaultData(n) == nil {
		return ""
	}
	return n
}

func configMap(name string, data map[string]string, rev int64) *corev1.ConfigMap {
	if data == nil {
		data = map[string]string{}
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: configPrefix + name, Namespace: servingNamespace, ResourceVersion: strconv.FormatInt(rev, 10)},
		Data:       data,
	}
}

func (b clusterConfigMaps) get(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	n := configName(ns, name)
	if n == "" {
		return nil, apierrors.NewNotFound(configMapsGR, name)
	}
	data, rev, err := b.s.readConfig(ctx, n)
	if err != nil {
		return nil, err
	}
	return configMap(n, data, rev), nil
}

func (b clusterConfigMaps) list(ctx context.Context, ns string) (*corev1.ConfigMapList, error) {
	kvs, rev, err := b.s.st.List(ctx, store.ConfigPrefix)
	if err != nil {
		return nil, err
	}
	out := configMapList(rev)
	if ns != "" && ns != servingNamespace {
		return out, nil
	}
	if out.Items, err = clusterItems(kvs); err != nil {
		return nil, err
	}
	return out, nil
}

func configMapList(rev int64) *corev1.ConfigMapList {
	return &corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMapList"},
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, Items: []corev1.ConfigMap{}}
}

// clusterItems are the config-* ConfigMaps given the records under config/,
// sorted by name.
func clusterItems(kvs []store.KV) ([]corev1.ConfigMap, error) {
	var items []corev1.ConfigMap
	stored := map[string]store.KV{}
	for _, kv := range kvs {
		stored[strings.TrimPrefix(kv.Key, store.ConfigPrefix)] = kv
	}
	for _, n := range config.Names() {
		cm := configMap(n, nil, 0)
		if kv, ok := stored[n]; ok {
			var d config.Document
			if err := json.Unmarshal(kv.Value, &d); err != nil {
				return nil, fmt.Errorf("stored config %q is not a config document: %v", n, err)
			}
			cm = configMap(n, d.Data, kv.ModRevision)
		}
		items = append(items, *cm)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	return items, nil
}

// create refuses: the config ConfigMaps always exist.
func (b clusterConfigMaps) create(_ context.Context, cm *corev1.ConfigMap, _ bool) (*corev1.ConfigMap, error) {
	return nil, apierrors.NewAlreadyExists(configMapsGR, cm.Name)
}

func (b clusterConfigMaps) update(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	n := configName(cm.Namespace, cm.Name)
	if n == "" {
		return nil, apierrors.NewNotFound(configMapsGR, cm.Name)
	}
	if len(cm.BinaryData) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, cm.Name, field.ErrorList{
			field.Forbidden(field.NewPath("binaryData"), "kiln's config ConfigMaps hold text data only")})
	}
	if dry {
		cur, err := b.get(ctx, cm.Namespace, cm.Name)
		if err != nil {
			return nil, err
		}
		if _, err := config.Parse(n, cm.Data); err != nil {
			return nil, configInvalid(cm, n, err)
		}
		return configMap(n, cm.Data, mustRev(cur.ResourceVersion)), nil
	}
	want, err := precondition(cm.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if want < 0 {
		if _, want, err = b.s.readConfig(ctx, n); err != nil {
			return nil, err
		}
	}
	rev, err := b.s.writeConfig(ctx, n, cm.Data, want)
	switch {
	case errdefs.IsConflict(err):
		return nil, apierrors.NewConflict(configMapsGR, cm.Name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errdefs.IsNotFound(err):
		return nil, apierrors.NewNotFound(configMapsGR, cm.Name)
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return nil, configInvalid(cm, n, err)
	case err != nil:
		return nil, err
	}
	return configMap(n, cm.Data, rev), nil
}

// configInvalid turns api/config's error into a 422 naming the data key.
func configInvalid(cm *corev1.ConfigMap, n string, err error) error {
	msg := strings.TrimSuffix(strings.TrimPrefix(err.Error(), fmt.Sprintf("config %q: ", n)), ": "+errdefs.ErrInvalidArgument.Error())
	path := field.NewPath("data")
	var value any = ""
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(msg, k+": ") {
			path, value, msg = path.Key(k), cm.Data[k], strings.TrimPrefix(msg, k+": ")
			break
		}
	}
	return apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, cm.Name, field.ErrorList{field.Invalid(path, value, msg)})
}

func (b clusterConfigMaps) delete(ctx context.Context, ns, name string) error {
	n := configName(ns, name)
	if n == "" {
		return apierrors.NewNotFound(configMapsGR, name)
	}
	if err := b.s.st.Delete(ctx, store.ConfigKey(n)); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	b.s.log.Info("config reset to defaults", "name", n)
	return nil
}

// registerConfigMaps serves /api/v1/[namespaces/{ns}/]configmaps.
func (s *server) registerConfigMaps(mux *http.ServeMux) {
	user := userConfigMaps{st: s.st}
	h := &configMapHandlers{s: s, b: configMaps{st: s.st, cluster: clusterConfigMaps{s: s}, user: user}, user: user}
	ns := CorePath + "/namespaces/{ns}/configmaps"
	mux.Handle("GET "+CorePath+"/configmaps", s.auth(h.list))
	mux.Handle("GET "+ns, s.auth(h.list))
	mux.Handle("POST "+ns, s.auth(h.create))
	mux.Handle("DELETE "+ns, s.auth(h.deleteCollection))
	mux.Handle("GET "+ns+"/{name}", s.auth(h.get))
	mux.Handle("PUT "+ns+"/{name}", s.auth(h.update))
	mux.Handle("PATCH "+ns+"/{name}", s.auth(h.patch))
	mux.Handle("DELETE "+ns+"/{name}", s.auth(h.delete))
}

type configMapHandlers struct {
	s    *server
	b    configMapBackend
	user userConfigMaps
}

func (h *configMapHandlers) get(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "configmaps", configMapSource(h.s.st, r.PathValue("ns")))
		return
	}
	cm, err := h.b.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		h.s.coreFail(w, r, err, configMapsGR, r.PathValue("name"))
		return
	}
	writeCore(w, r, http.StatusOK, cm)
}

func (h *configMapHandlers) list(w http.ResponseWriter, r *http.Request) {
	if isWatch(r) {
		h.s.serveCoreWatch(w, r, "configmaps", configMapSource(h.s.st, r.PathValue("ns")))
		return
	}
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace")
	}
	if err != nil {
		h.s.coreFail(w, r, err, configMapsGR, "")
		return
	}
	list, err := h.b.list(r.Context(), r.PathValue("ns"))
	if err != nil {
		h.s.coreFail(w, r, err, configMapsGR, "")
		return
	}
	items := list.Items[:0]
	for _, cm := range list.Items {
		if ls.Matches(labels.Set(cm.Labels)) && fs.Matches(fields.Set{"metadata.name": cm.Name, "metadata.namespace": cm.Namespace}) {
			items = append(items, cm)
		}
	}
	list.Items = items
	writeCore(w, r, http.StatusOK, list)
}

// readConfigMap decodes a ConfigMap body and checks it against the URL.
func readConfigMap(r *http.Request, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := readCoreObject(r, cm, "configmaps"); err != nil {
		return nil, err
	}
	if err := checkTarget(&cm.ObjectMeta, r.PathValue("ns"), name); err != nil {
		return nil, err
	}
	return cm, nil
}

// checkTarget fills the namespace from the URL and refuses a body naming
// another namespace or name, with Kubernetes' messages.
func checkTarget(m *metav1.ObjectMeta, ns, name string) error {
	if m.Namespace == "" {
		m.Namespace = ns
	}
	if m.Namespace != ns {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if name != "" && m.Name != name {
		return apierrors.NewBadRequest("the name of the object (" + m.Name + ") does not match the name on the URL (" + name + ")")
	}
	return nil
}

func (h *configMapHandlers) create(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	var cm, out *corev1.ConfigMap
	if err == nil {
		cm, err = readConfigMap(r, "")
	}
	if err == nil {
		out, err = h.b.create(r.Context(), cm, dry)
	}
	if err != nil {
		name := ""
		if cm != nil {
			name = cm.Name
		}
		h.s.coreFail(w, r, err, configMapsGR, name)
		return
	}
	if !dry {
		h.s.log.Info("created", "kind", "ConfigMap", "namespace", out.Namespace, "name", out.Name, "resource_version", out.ResourceVersion)
	}
	writeCore(w, r, http.StatusCreated, out)
}

func (h *configMapHandlers) update(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	dry, err := dryRun(r)
	if err != nil {
		h.s.coreFail(w, r, err, configMapsGR, name)
		return
	}
	cm, err := readConfigMap(r, name)
	if err == nil {
		cm, err = h.write(r.Context(), cm, dry)
	}
	if err != nil {
		h.s.coreFail(w, r, err, configMapsGR, name)
		return
	}
	writeCore(w, r, http.StatusOK, cm)
}

// write updates cm, or with dry only validates it and answers what would be
// stored.
func (h *configMapHandlers) write(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	out, err := h.b.update(ctx, cm, dry)
	if err == nil && !dry {
		h.s.log.Info("updated", "kind", "ConfigMap", "namespace", cm.Namespace, "name", cm.Name, "resource_version", out.ResourceVersion)
	}
	return out, err
}

func mustRev(rv string) int64 {
	n, _ := strconv.ParseInt(rv, 10, 64)
	return n
}

// patch applies a strategic merge, JSON merge or JSON patch to the current
// ConfigMap and writes the result with a compare-and-swap on the revision it
// read, replaying on a concurrent change unless the patch itself carries a
// resourceVersion (a precondition, as in Kubernetes).
func (h *configMapHandlers) patch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	fail := func(err error) { h.s.coreFail(w, r, err, configMapsGR, name) }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	pt, body, err := readPatch(r)
	if err != nil {
		fail(err)
		return
	}
	for attempt := 0; ; attempt++ {
		cur, err := h.b.get(ctx, ns, name)
		if err != nil {
			fail(err)
			return
		}
		cm, err := patchCore[corev1.ConfigMap](pt, cur, body, "ConfigMap")
		if err != nil {
			fail(err)
			return
		}
		if err := checkTarget(&cm.ObjectMeta, ns, name); err != nil {
			fail(err)
			return
		}
		pinned := cm.ResourceVersion != cur.ResourceVersion
		out, err := h.write(ctx, cm, dry)
		if apierrors.IsConflict(err) && !pinned && attempt < patchRetries {
			continue
		}
		if err != nil {
			fail(err)
			return
		}
		writeCore(w, r, http.StatusOK, out)
		return
	}
}

func (h *configMapHandlers) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.b.delete(r.Context(), ns, name); err != nil {
		h.s.coreFail(w, r, err, configMapsGR, name)
		return
	}
	h.s.log.Info("deleted", "kind", "ConfigMap", "namespace", ns, "name", name)
	writeCore(w, r, http.StatusOK, deleted(configMapsGR, name))
}

// deleteCollection deletes the users' ConfigMaps of the namespace that the
// label and field selectors match and answers them as they were, as
// Kubernetes does. kiln's config-* ConfigMaps always exist and are left
// alone: a config is reset one at a time, by a cluster-admin.
func (h *configMapHandlers) deleteCollection(w http.ResponseWriter, r *http.Request) {
	ctx, ns := r.Context(), r.PathValue("ns")
	fail := func(err error) { h.s.coreFail(w, r, err, configMapsGR, "") }
	dry, err := dryRun(r)
	if err != nil {
		fail(err)
		return
	}
	ls, fs, err := selectors(r)
	if err == nil {
		err = checkFields(fs, "metadata.name", "metadata.namespace")
	}
	if err != nil {
		fail(err)
		return
	}
	list, err := h.user.list(ctx, ns)
	if err != nil {
		fail(err)
		return
	}
	items := list.Items[:0]
	for _, cm := range list.Items {
		if !ls.Matches(labels.Set(cm.Labels)) || !fs.Matches(fields.Set{"metadata.name": cm.Name, "metadata.namespace": cm.Namespace}) {
			continue
		}
		if !dry {
			err := h.user.delete(ctx, ns, cm.Name)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				fail(err)
				return
			}
			h.s.log.Info("deleted", "kind", "ConfigMap", "namespace", ns, "name", cm.Name)
		}
		items = append(items, cm)
	}
	list.Items = items
	writeCore(w, r, http.StatusOK, list)
}
