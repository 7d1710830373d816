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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

var configMapsGR = schema.GroupResource{Resource: "configmaps"}

// configPrefix is how Knative names its config ConfigMaps: config-<name>.
const configPrefix = "config-"

// ConfigMaps come in two families, each an objectBackend: kiln's cluster
// configs (clusterConfigMaps) and users' ConfigMaps in every namespace
// (userConfigMaps); configMaps picks one by namespace and name.
//
// clusterConfigMaps shows kiln's cluster configs (config/<name>) as the
// ConfigMaps config-<name> in knative-serving: data is the stored document
// (empty when every key is at its default), resourceVersion the config's
// etcd mod revision ("0" while not stored), and writes go through the same
// validation and compare-and-swap as the kiln.dev configs API. Deleting one
// puts every key back at its default; the ConfigMap itself always exists.
type clusterConfigMaps struct{ s *server }

var _ objectBackend[*corev1.ConfigMap] = clusterConfigMaps{}

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

// registerConfigMaps serves /api/v1/[namespaces/{ns}/]configmaps. A
// deletecollection deletes users' ConfigMaps only: kiln's config-*
// ConfigMaps always exist and are reset one at a time, by a cluster-admin.
func (s *server) registerConfigMaps(mux *http.ServeMux) {
	user := newUserConfigMaps(s.st)
	b := configMaps{st: s.st, cluster: clusterConfigMaps{s: s}, user: user}
	h := &objectHandlers[corev1.ConfigMap, *corev1.ConfigMap]{
		s: s, resource: "configmaps", gr: configMapsGR, kind: "ConfigMap", b: b,
		all: b.items,
		newList: func(rev int64, items []corev1.ConfigMap) runtime.Object {
			out := configMapList(rev)
			out.Items = items
			return out
		},
		stored:      user.storedObjects,
		watchSource: func(ns string) watchSource { return configMapSource(s.st, ns) },
	}
	h.register(mux)
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

func mustRev(rv string) int64 {
	n, _ := strconv.ParseInt(rv, 10, 64)
	return n
}
