package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// Document is the stored shape of one config: Knative ConfigMap data.
type Document struct {
	Data map[string]string `json:"data"`
}

// parser turns a config's data into its typed form, applying defaults and
// naming the key of the first invalid value.
type parser func(data map[string]string) (any, error)

var (
	mu      sync.RWMutex
	parsers = map[string]parser{}
)

// register adds a config kind; each kind's file registers itself in init.
func register(name string, p parser) {
	mu.Lock()
	defer mu.Unlock()
	parsers[name] = p
}

// Names returns the known config names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for n := range parsers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Parse validates data as config name. Errors wrap errdefs.ErrInvalidArgument
// and name the key, or errdefs.ErrNotFound for an unknown config name.
func Parse(name string, data map[string]string) (any, error) {
	mu.RLock()
	p, ok := parsers[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("config %q: %w (known: %s)", name, errdefs.ErrNotFound, strings.Join(Names(), ", "))
	}
	v, err := p(data)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", name, err)
	}
	return v, nil
}

// Snapshot is every config, parsed; a missing or invalid stored document
// yields that config's defaults.
type Snapshot struct {
	configs map[string]any
}

// Get returns config name from the snapshot (defaults when absent).
func (s *Snapshot) Get(name string) any {
	if v, ok := s.configs[name]; ok {
		return v
	}
	v, _ := Parse(name, nil)
	return v
}

// Autoscaler returns the autoscaler config.
func (s *Snapshot) Autoscaler() *Autoscaler { return s.Get(NameAutoscaler).(*Autoscaler) }

// DefaultSnapshot holds every config's defaults.
func DefaultSnapshot() *Snapshot { return &Snapshot{configs: map[string]any{}} }

// Snapshot of documents (config name → data), tolerant of bad ones: a
// document that does not parse leaves that config at its defaults and is
// reported to invalid (which may be nil). The live watcher builds its
// snapshots with it.
func SnapshotOf(docs map[string]map[string]string, invalid func(name string, err error)) *Snapshot {
	snap := &Snapshot{configs: map[string]any{}}
	for name, data := range docs {
		v, err := Parse(name, data)
		if err != nil {
			if invalid != nil {
				invalid(name, err)
			}
			continue
		}
		snap.configs[name] = v
	}
	return snap
}

// --- value parsers shared by the config kinds ---

func invalid(key, value, want string) error {
	return fmt.Errorf("%s: invalid value %q: %s: %w", key, value, want, errdefs.ErrInvalidArgument)
}

func parseFloat(data map[string]string, key string, def, min, max float64, dst *float64) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	// NaN compares false against both bounds and Inf passes an open upper
	// bound: either would reach the autoscaler's arithmetic.
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < min || f > max {
		return invalid(key, v, fmt.Sprintf("want a number in [%g, %g]", min, max))
	}
	*dst = f
	return nil
}

func parseInt(data map[string]string, key string, def, min, max int64, dst *int64) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || i < min || i > max {
		return invalid(key, v, fmt.Sprintf("want an integer in [%d, %d]", min, max))
	}
	*dst = i
	return nil
}

func parseBool(data map[string]string, key string, def bool, dst *bool) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return invalid(key, v, "want true or false")
	}
	*dst = b
	return nil
}

func parseDuration(data map[string]string, key string, def, min, max time.Duration, dst *time.Duration) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < min || (max > 0 && d > max) {
		return invalid(key, v, fmt.Sprintf("want a duration in [%s, %s]", min, max))
	}
	*dst = d
	return nil
}

func parseString(data map[string]string, key, def string, allowed []string, dst *string) error {
	*dst = def
	v, ok := data[key]
	if !ok {
		return nil
	}
	v = strings.TrimSpace(v)
	if len(allowed) > 0 {
		for _, a := range allowed {
			if v == a {
				*dst = v
				return nil
			}
		}
		return invalid(key, v, "want one of "+strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

// checkKeys rejects keys the config does not know, so typos are caught.
func checkKeys(data map[string]string, known ...string) error {
	set := map[string]bool{}
	for _, k := range known {
		set[k] = true
	}
	var unknown []string
	for k := range data {
		if !set[k] && !strings.HasPrefix(k, "_") {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown key(s) %s: %w", strings.Join(unknown, ", "), errdefs.ErrInvalidArgument)
	}
	return nil
}
