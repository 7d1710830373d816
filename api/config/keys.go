package config

import "sort"

// defaultData is every config's keys with their default values written the
// way a user would write them, so `kiln config get` can show the effective
// document (defaults merged with what is stored) and mark what is set.
// Keys accepted only for compatibility with Knative manifests (and ignored
// by kiln) are not listed. A test keeps these strings in step with the
// parsers: each map must parse to the same value as an empty document.
var defaultData = map[string]map[string]string{
	NameAutoscaler: {
		"enable-scale-to-zero":                    "true",
		"container-concurrency-target-percentage": "70",
		"container-concurrency-target-default":    "100",
		"requests-per-second-target-default":      "200",
		"target-burst-capacity":                   "211",
		"activator-capacity":                      "100",
		"stable-window":                           "60s",
		"panic-window-percentage":                 "10",
		"panic-threshold-percentage":              "200",
		"max-scale-up-rate":                       "1000",
		"max-scale-down-rate":                     "2",
		"scale-to-zero-grace-period":              "30s",
		"scale-to-zero-pod-retention-period":      "0s",
		"scale-down-delay":                        "0s",
		"pod-autoscaler-class":                    ClassKPA,
		"initial-scale":                           "1",
		"allow-zero-initial-scale":                "false",
		"min-scale":                               "0",
		"max-scale":                               "0",
		"max-scale-limit":                         "0",
	},
	NameDefaults: {
		"revision-timeout-seconds":                "300",
		"max-revision-timeout-seconds":            "600",
		"revision-response-start-timeout-seconds": "0",
		"revision-idle-timeout-seconds":           "0",
		"revision-cpu-request":                    "",
		"revision-memory-request":                 "",
		"revision-cpu-limit":                      "",
		"revision-memory-limit":                   "",
		"container-name-template":                 "user-container",
		"init-container-name-template":            "init-container",
		"container-concurrency":                   "0",
		"container-concurrency-max-limit":         "1000",
		"allow-container-concurrency-zero":        "true",
		"enable-service-links":                    "false",
	},
	NameGC: {
		"retain-since-create-time":      "48h",
		"retain-since-last-active-time": "15h",
		"min-non-active-revisions":      "20",
		"max-non-active-revisions":      "1000",
	},
	// config-domain's keys are the domains themselves; with none stored,
	// every route gets example.com.
	NameDomain: {
		"example.com": "",
	},
	NameNetwork: {
		"domain-template":                  "{{.Name}}.{{.Namespace}}.{{.Domain}}",
		"tag-template":                     "{{.Tag}}-{{.Name}}",
		"default-external-scheme":          "http",
		"http-protocol":                    HTTPEnabled,
		"autocreate-cluster-domain-claims": "false",
		"ingress-class":                    "kiln",
		"namespace-internal-traffic":       "",
	},
	NameDeployment: {
		"progress-deadline":                 "10m0s",
		"digest-resolution-timeout":         "10s",
		"registries-skipping-tag-resolving": "kind.local,ko.local,dev.local",
	},
}

func init() {
	f := map[string]string{}
	for k, v := range featureDefaults {
		f[k] = v
	}
	defaultData[NameFeatures] = f
}

// DefaultData returns config name's keys with their default values (a new
// map), or nil for an unknown name.
func DefaultData(name string) map[string]string {
	d, ok := defaultData[name]
	if !ok {
		return nil
	}
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

// Effective is one key of a config as it applies: the stored value when
// set, else the default.
type Effective struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Set is true when the value is stored (it may equal the default).
	Set bool `json:"set"`
}

// EffectiveData merges stored over config name's defaults, sorted by key.
// For config-domain a stored document replaces the default domain entirely,
// as in Knative: once any domain is configured, example.com no longer applies.
func EffectiveData(name string, stored map[string]string) []Effective {
	merged := map[string]Effective{}
	if !(name == NameDomain && len(stored) > 0) {
		for k, v := range defaultData[name] {
			merged[k] = Effective{Key: k, Value: v}
		}
	}
	for k, v := range stored {
		merged[k] = Effective{Key: k, Value: v, Set: true}
	}
	out := make([]Effective, 0, len(merged))
	for _, e := range merged {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
