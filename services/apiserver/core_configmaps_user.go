package apiserver

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/internal/store"
)

// maxConfigMapSize is Kubernetes' limit on a ConfigMap's data and
// binaryData together (its MaxSecretSize).
const maxConfigMapSize = 1 << 20

// configMaps serves every ConfigMap: kiln's config-* names in
// knative-serving from its cluster configs, every other name from the
// users' records.
type configMaps struct {
	st      store.Store
	cluster clusterConfigMaps
	user    userConfigMaps
}

var _ objectBackend[*corev1.ConfigMap] = configMaps{}

func (c configMaps) pick(ns, name string) objectBackend[*corev1.ConfigMap] {
	if configName(ns, name) != "" {
		return c.cluster
	}
	return c.user
}

func (c configMaps) get(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return c.pick(ns, name).get(ctx, ns, name)
}

// items reads both families in one list of their common prefix, so the
// answer is one revision's state: the ConfigMaps of ns ("" = every
// namespace), sorted, and the revision read at.
func (c configMaps) items(ctx context.Context, ns string) (int64, []corev1.ConfigMap, error) {
	kvs, rev, err := c.st.List(ctx, store.ConfigMapSourcesPrefix)
	if err != nil {
		return 0, nil, err
	}
	out := []corev1.ConfigMap{}
	var configs []store.KV
	userPrefix := store.ConfigMapListPrefix(ns)
	for _, kv := range kvs {
		switch {
		case strings.HasPrefix(kv.Key, store.ConfigPrefix):
			configs = append(configs, kv)
		case strings.HasPrefix(kv.Key, userPrefix):
			cm, err := decodeConfigMap(kv)
			if err != nil {
				return 0, nil, err
			}
			out = append(out, *cm)
		}
	}
	if ns == "" || ns == servingNamespace {
		items, err := clusterItems(configs)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, items...)
	}
	sortConfigMaps(out)
	return rev, out, nil
}

func sortConfigMaps(items []corev1.ConfigMap) { sortObjects[corev1.ConfigMap](items) }

func (c configMaps) create(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	return c.pick(cm.Namespace, cm.Name).create(ctx, cm, dry)
}

func (c configMaps) update(ctx context.Context, cm *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	return c.pick(cm.Namespace, cm.Name).update(ctx, cm, dry)
}

func (c configMaps) delete(ctx context.Context, ns, name string) error {
	return c.pick(ns, name).delete(ctx, ns, name)
}

// userConfigMaps are users' ConfigMaps, stored as core/v1 JSON under
// configmaps/<namespace>/<name>, with Kubernetes' validation: uid and
// creationTimestamp are the server's, resourceVersion the record's mod
// revision, and an immutable ConfigMap's data never changes. kiln's
// config-* names are taken by its cluster configs.
type userConfigMaps struct {
	storedObjects[corev1.ConfigMap, *corev1.ConfigMap]
}

var _ objectBackend[*corev1.ConfigMap] = userConfigMaps{}

func newUserConfigMaps(st store.Store) userConfigMaps {
	return userConfigMaps{storedObjects[corev1.ConfigMap, *corev1.ConfigMap]{
		st: st, gr: configMapsGR, kind: "ConfigMap",
		root: store.ConfigMapsPrefix, listPrefix: store.ConfigMapListPrefix, key: store.ConfigMapKey,
		validate: validateConfigMap, validateUpdate: validateConfigMapUpdate,
		reserved: func(ns, name string) bool { return configName(ns, name) != "" },
	}}
}

// decodeConfigMap reads a record under configmaps/.
func decodeConfigMap(kv store.KV) (*corev1.ConfigMap, error) {
	return newUserConfigMaps(nil).decode(kv)
}

var errModified = errors.New("the object has been modified; please apply your changes to the latest version and try again")

// validateConfigMap is Kubernetes' ValidateConfigMap: object metadata (a
// DNS-subdomain name), keys that are valid ConfigMap keys, no data key
// also in binaryData, and at most 1 MiB of values.
func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	size := 0
	for _, k := range sortedKeys(cm.Data) {
		p := field.NewPath("data").Key(k)
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p, k, msg))
		}
		if _, dup := cm.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(p, k, "duplicate of key present in binaryData"))
		}
		size += len(cm.Data[k])
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
		size += len(cm.BinaryData[k])
	}
	if size > maxConfigMapSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxConfigMapSize))
	}
	return errs
}

// validateConfigMapUpdate is Kubernetes' check of an immutable ConfigMap:
// it stays immutable and its data and binaryData never change.
func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	if old.Immutable == nil || !*old.Immutable {
		return nil
	}
	const msg = "field is immutable when `immutable` is set"
	var errs field.ErrorList
	if cm.Immutable == nil || !*cm.Immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), msg))
	}
	if !reflect.DeepEqual(cm.Data, old.Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), msg))
	}
	if !reflect.DeepEqual(cm.BinaryData, old.BinaryData) {
		errs = append(errs, field.Forbidden(field.NewPath("binaryData"), msg))
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
