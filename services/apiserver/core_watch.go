package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/kiln-serving/kiln/api/config"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// storeSource watches a core kind straight from its store prefix, for
// serveWatch: the records are decoded into the objects the core handlers
// answer, so a watch shows what a list shows.
type storeSource struct {
	st store.Store
	// prefix is where ns's records live ("" = every namespace); ok=false
	// when ns holds none of them.
	prefix func(ns string) (p string, ok bool)
	// decode turns a record (for a delete, its last value; none with
	// alwaysExists) into the object shown; ok=false shows none.
	decode func(kv store.KV) (it watchItem, ok bool, err error)
	// implicit are the objects of ns that exist without a record, given
	// the keys of the recorded ones. Optional.
	implicit func(ns string, recorded map[string]bool) []watchItem
	// alwaysExists says which records' changes are all MODIFIED: their
	// objects exist with or without a record (kiln's config ConfigMaps),
	// so a record's creation or deletion only changes their data.
	// Optional.
	alwaysExists func(key string) bool
}

func (s storeSource) apiVersion() string { return "v1" }

func (s storeSource) snapshot(ctx context.Context, ns string, rev int64) ([]watchItem, int64, error) {
	p, ok := s.prefix(ns)
	if !ok {
		// Nothing to list, but the revision is the store's.
		_, at, err := s.st.ListAt(ctx, store.NamespacesPrefix, rev)
		return nil, at, err
	}
	kvs, at, err := s.st.ListAt(ctx, p, rev)
	if err != nil {
		return nil, 0, err
	}
	var out []watchItem
	recorded := map[string]bool{}
	for _, kv := range kvs {
		it, ok, err := s.decode(kv)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			out = append(out, it)
			recorded[it.key] = true
		}
	}
	if s.implicit != nil {
		out = append(out, s.implicit(ns, recorded)...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, at, nil
}

func (s storeSource) changes(ctx context.Context, ns string, fromRev int64) <-chan watchChange {
	out := make(chan watchChange)
	p, ok := s.prefix(ns)
	if !ok {
		go func() {
			<-ctx.Done()
			close(out)
		}()
		return out
	}
	in := s.st.Watch(ctx, p, fromRev)
	go func() {
		defer close(out)
		send := func(c watchChange) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for wr := range in {
			if wr.Err != nil {
				send(watchChange{err: wr.Err})
				return
			}
			for _, ev := range wr.Events {
				kv := ev.KV
				always := s.alwaysExists != nil && s.alwaysExists(kv.Key)
				if always && ev.Type == store.EventDelete {
					kv.Value = nil // the object is back at its defaults
				}
				it, ok, err := s.decode(kv)
				if err != nil {
					send(watchChange{err: err})
					return
				}
				if !ok {
					continue
				}
				c := watchChange{item: it, revision: ev.KV.ModRevision}
				switch {
				case always:
					c.typ = registry.Modified
				case ev.Type == store.EventDelete:
					c.typ = registry.Deleted
				case ev.KV.CreateRevision == ev.KV.ModRevision:
					c.typ = registry.Added
				default:
					c.typ = registry.Modified
				}
				if !send(c) {
					return
				}
			}
		}
	}()
	return out
}

// coreItem is a core object as a watch sees it.
func coreItem(obj any, m *metav1.ObjectMeta, f fields.Set) watchItem {
	f[fieldName] = m.Name
	if m.Namespace != "" {
		f[fieldNamespace] = m.Namespace
	}
	return watchItem{obj: obj, key: m.Namespace + "/" + m.Name, labels: m.Labels, fields: f,
		setRV: func(rv string) { m.ResourceVersion = rv }}
}

func namespaceItem(ns *corev1.Namespace) watchItem {
	ns.APIVersion, ns.Kind = "v1", "Namespace"
	return coreItem(ns, &ns.ObjectMeta, fields.Set{"status.phase": string(ns.Status.Phase)})
}

// namespaceSource watches namespaces/: the built-in namespaces exist
// without a record.
func namespaceSource(st store.Store) storeSource {
	return storeSource{st: st,
		prefix: func(string) (string, bool) { return store.NamespacesPrefix, true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			ns, err := decodeNamespace(kv)
			if err != nil {
				return watchItem{}, false, err
			}
			return namespaceItem(ns), true, nil
		},
		implicit: func(_ string, recorded map[string]bool) []watchItem {
			var out []watchItem
			for _, b := range []string{defaultNamespace, servingNamespace} {
				if !recorded["/"+b] {
					out = append(out, namespaceItem(implicitNamespace(b)))
				}
			}
			return out
		},
	}
}

// secretSource watches secrets/: events carry the secrets as the API
// answers them, without key material.
func secretSource(st store.Store, keys *encryption.Keys) storeSource {
	return storeSource{st: st,
		prefix: func(ns string) (string, bool) { return store.SecretListPrefix(ns), true },
		decode: func(kv store.KV) (watchItem, bool, error) {
			sec, err := secret.Decode(kv, keys)
			if err != nil {
				return watchItem{}, false, err
			}
			k, err := toK8sSecret(secret.Redact(sec))
			if err != nil {
				return watchItem{}, false, err
			}
			k.APIVersion, k.Kind = "v1", "Secret"
			return coreItem(k, &k.ObjectMeta, fields.Set{"type": string(k.Type)}), true, nil
		},
	}
}

// configMapSource watches the ConfigMaps of ns ("" = every namespace):
// users' records under configmaps/ and, in knative-serving, kiln's cluster
// configs under config/ as its config-* ConfigMaps. Those always exist, so
// a config stored or reset is a MODIFIED of its ConfigMap. One watch of
// the two prefixes' common prefix keeps the events in revision order.
func configMapSource(st store.Store, ns string) storeSource {
	withConfigs := ns == "" || ns == servingNamespace
	userPrefix := store.ConfigMapListPrefix(ns)
	return storeSource{st: st,
		alwaysExists: func(key string) bool { return strings.HasPrefix(key, store.ConfigPrefix) },
		prefix: func(string) (string, bool) {
			if withConfigs {
				return store.ConfigMapSourcesPrefix, true
			}
			return userPrefix, true
		},
		decode: func(kv store.KV) (watchItem, bool, error) {
			if strings.HasPrefix(kv.Key, userPrefix) {
				cm, err := decodeConfigMap(kv)
				if err != nil {
					return watchItem{}, false, err
				}
				return configMapItem(cm), true, nil
			}
			if !withConfigs || !strings.HasPrefix(kv.Key, store.ConfigPrefix) {
				return watchItem{}, false, nil
			}
			n := strings.TrimPrefix(kv.Key, store.ConfigPrefix)
			if config.DefaultData(n) == nil {
				return watchItem{}, false, nil
			}
			var d config.Document
			if len(kv.Value) > 0 {
				if err := json.Unmarshal(kv.Value, &d); err != nil {
					return watchItem{}, false, fmt.Errorf("stored config %q is not a config document: %v", n, err)
				}
			}
			return configMapItem(configMap(n, d.Data, kv.ModRevision)), true, nil
		},
		implicit: func(_ string, recorded map[string]bool) []watchItem {
			if !withConfigs {
				return nil
			}
			var out []watchItem
			for _, n := range config.Names() {
				if !recorded[servingNamespace+"/"+configPrefix+n] {
					out = append(out, configMapItem(configMap(n, nil, 0)))
				}
			}
			return out
		},
	}
}

func configMapItem(cm *corev1.ConfigMap) watchItem {
	return coreItem(cm, &cm.ObjectMeta, fields.Set{})
}

// serveCoreWatch serves ?watch=true on a core list, or on one object
// (the path's {name}) as a watch narrowed to it, with the serving kinds'
// watch: selectors, resourceVersion, timeoutSeconds and bookmarks.
// extraFields are the kind's field selectors besides metadata.name and
// metadata.namespace.
func (s *server) serveCoreWatch(w http.ResponseWriter, r *http.Request, resource string, src watchSource, extraFields ...string) {
	a, _ := findAPIResource("", "v1", resource)
	opts, err := parseListOptions(r, extraFields...)
	if err != nil {
		s.failFor(w, r, err, a, r.PathValue("name"))
		return
	}
	if name := r.PathValue("name"); name != "" {
		sel := fields.OneTermEqualSelector(fieldName, name)
		if opts.FieldSelector != nil && !opts.FieldSelector.Empty() {
			sel = fields.AndSelectors(sel, opts.FieldSelector)
		}
		opts.FieldSelector = sel
	}
	s.serveWatch(w, r, a, src, opts)
}
