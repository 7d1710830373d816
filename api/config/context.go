package config

import "context"

type snapshotKey struct{}

// WithSnapshot returns ctx carrying snap, so pure code (defaulting and
// validation in api/serving/v1) can read the cluster configs of the moment
// without holding a Watcher. The API server and controller attach the
// watcher's Current() per request or pass.
func WithSnapshot(ctx context.Context, snap *Snapshot) context.Context {
	return context.WithValue(ctx, snapshotKey{}, snap)
}

// FromContextOrDefaults returns the snapshot ctx carries, or every config's
// defaults when it carries none, as Knative's config.FromContextOrDefaults.
func FromContextOrDefaults(ctx context.Context) *Snapshot {
	if s, ok := ctx.Value(snapshotKey{}).(*Snapshot); ok && s != nil {
		return s
	}
	return DefaultSnapshot()
}

// SnapshotFrom parses documents (config name → data) into a snapshot, failing
// on the first invalid one. Tests and offline tools use it; the Watcher
// builds its snapshots from the store.
func SnapshotFrom(docs map[string]map[string]string) (*Snapshot, error) {
	snap := &Snapshot{configs: map[string]any{}}
	for name, data := range docs {
		v, err := Parse(name, data)
		if err != nil {
			return nil, err
		}
		snap.configs[name] = v
	}
	return snap, nil
}
