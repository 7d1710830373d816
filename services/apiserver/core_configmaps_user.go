package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kiln-serving/kiln/api/errdefs"
	kilnmeta "github.com/kiln-serving/kiln/api/meta/v1"
	"github.com/kiln-serving/kiln/internal/store"
)

// maxConfigMapSize is Kubernetes' limit on a ConfigMap's data and
// binaryData together (its MaxSecretSize).
const maxConfigMapSize = 1 << 20

var configMapGK = schema.GroupKind{Kind: "ConfigMap"}

// configMaps serves every ConfigMap: kiln's config-* names in
// knative-serving from its cluster configs, every other name from the
// users' records.
type configMaps struct {
	st      store.Store
	cluster clusterConfigMaps
	user    userConfigMaps
}

var _ configMapBackend = configMaps{}

func (c configMaps) pick(ns, name string) configMapBackend {
	if configName(ns, name) != "" {
		return c.cluster
	}
	return c.user
}

func (c configMaps) get(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return c.pick(ns, name).get(ctx, ns, name)
}

// list reads both families in one list of their common prefix, so the
// answer is one revision's state.
func (c configMaps) list(ctx context.Context, ns string) (*corev1.ConfigMapList, error) {
	kvs, rev, err := c.st.List(ctx, store.ConfigMapSourcesPrefix)
	if err != nil {
		return nil, err
	}
	out := configMapList(rev)
	var configs []store.KV
	userPrefix := store.ConfigMapListPrefix(ns)
	for _, kv := range kvs {
		switch {
		case strings.HasPrefix(kv.Key, store.ConfigPrefix):
			configs = append(configs, kv)
		case strings.HasPrefix(kv.Key, userPrefix):
			cm, err := decodeConfigMap(kv)
			if err != nil {
				return nil, err
			}
			out.Items = append(out.Items, *cm)
		}
	}
	if ns == "" || ns == servingNamespace {
		items, err := clusterItems(configs)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, items...)
	}
	sortConfigMaps(out.Items)
	return out, nil
}

func sortConfigMaps(items []corev1.ConfigMap) {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
}

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
// revision, and an immutable ConfigMap's data never changes.
type userConfigMaps struct{ st store.Store }

var _ configMapBackend = userConfigMaps{}

// decodeConfigMap reads a record under configmaps/.
func decodeConfigMap(kv store.KV) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(kv.Value, cm); err != nil {
		return nil, fmt.Errorf("stored ConfigMap %s is not a ConfigMap: %v", strings.TrimPrefix(kv.Key, store.ConfigMapsPrefix), err)
	}
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	cm.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return cm, nil
}

func (b userConfigMaps) get(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	kv, err := b.st.Get(ctx, store.ConfigMapKey(ns, name))
	if errdefs.IsNotFound(err) {
		return nil, apierrors.NewNotFound(configMapsGR, name)
	}
	if err != nil {
		return nil, err
	}
	return decodeConfigMap(kv)
}

func (b userConfigMaps) list(ctx context.Context, ns string) (*corev1.ConfigMapList, error) {
	kvs, rev, err := b.st.List(ctx, store.ConfigMapListPrefix(ns))
	if err != nil {
		return nil, err
	}
	out := configMapList(rev)
	for _, kv := range kvs {
		cm, err := decodeConfigMap(kv)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *cm)
	}
	sortConfigMaps(out.Items)
	return out, nil
}

// put stores cm with the condition rev (0 = create only) and answers it
// with its new resourceVersion.
func (b userConfigMaps) put(ctx context.Context, cm *corev1.ConfigMap, rev int64) (*corev1.ConfigMap, error) {
	rec := cm.DeepCopy()
	rec.TypeMeta, rec.ResourceVersion = metav1.TypeMeta{}, ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	at, err := b.st.Put(ctx, store.ConfigMapKey(cm.Namespace, cm.Name), body, store.IfRevision(rev))
	if err != nil {
		return nil, err
	}
	out := cm.DeepCopy()
	out.APIVersion, out.Kind = "v1", "ConfigMap"
	out.ResourceVersion = strconv.FormatInt(at, 10)
	return out, nil
}

func (b userConfigMaps) create(ctx context.Context, in *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	generate := in.Name == "" && in.GenerateName != ""
	for attempt := 0; ; attempt++ {
		cm := in.DeepCopy()
		if generate {
			cm.Name = generatedName(cm.GenerateName)
		}
		cm.UID = types.UID(kilnmeta.NewUID())
		cm.CreationTimestamp = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		cm.ResourceVersion, cm.Generation, cm.DeletionTimestamp, cm.DeletionGracePeriodSeconds = "", 0, nil, nil
		if errs := validateConfigMap(cm); len(errs) > 0 {
			return nil, apierrors.NewInvalid(configMapGK, cm.Name, errs)
		}
		if configName(cm.Namespace, cm.Name) != "" {
			return nil, apierrors.NewAlreadyExists(configMapsGR, cm.Name)
		}
		if dry {
			if _, err := b.get(ctx, cm.Namespace, cm.Name); err == nil {
				return nil, apierrors.NewAlreadyExists(configMapsGR, cm.Name)
			}
			cm.APIVersion, cm.Kind = "v1", "ConfigMap"
			return cm, nil
		}
		out, err := b.put(ctx, cm, 0)
		if errdefs.IsAlreadyExists(err) || errdefs.IsConflict(err) {
			if generate && attempt < generateNameRetries {
				continue
			}
			return nil, apierrors.NewAlreadyExists(configMapsGR, cm.Name)
		}
		return out, err
	}
}

var errModified = errors.New("the object has been modified; please apply your changes to the latest version and try again")

func (b userConfigMaps) update(ctx context.Context, in *corev1.ConfigMap, dry bool) (*corev1.ConfigMap, error) {
	if err := checkResourceVersion(in.ResourceVersion); err != nil {
		return nil, err
	}
	cur, err := b.get(ctx, in.Namespace, in.Name)
	if err != nil {
		return nil, err
	}
	if in.ResourceVersion != "" && in.ResourceVersion != cur.ResourceVersion {
		return nil, apierrors.NewConflict(configMapsGR, in.Name, errModified)
	}
	cm := in.DeepCopy()
	if cm.UID == "" {
		cm.UID = cur.UID
	}
	cm.CreationTimestamp, cm.ResourceVersion = cur.CreationTimestamp, cur.ResourceVersion
	errs := apivalidation.ValidateObjectMetaUpdate(&cm.ObjectMeta, &cur.ObjectMeta, field.NewPath("metadata"))
	errs = append(errs, validateConfigMapUpdate(cm, cur)...)
	errs = append(errs, validateConfigMap(cm)...)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(configMapGK, cm.Name, errs)
	}
	if dry {
		cm.APIVersion, cm.Kind = "v1", "ConfigMap"
		return cm, nil
	}
	out, err := b.put(ctx, cm, mustRev(cur.ResourceVersion))
	switch {
	case errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err):
		return nil, apierrors.NewConflict(configMapsGR, cm.Name, errModified)
	case errdefs.IsNotFound(err):
		return nil, apierrors.NewNotFound(configMapsGR, cm.Name)
	}
	return out, err
}

func (b userConfigMaps) delete(ctx context.Context, ns, name string) error {
	err := b.st.Delete(ctx, store.ConfigMapKey(ns, name))
	if errdefs.IsNotFound(err) {
		return apierrors.NewNotFound(configMapsGR, name)
	}
	return err
}

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
