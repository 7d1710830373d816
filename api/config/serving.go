package config

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// Config names, as Knative's config maps without the "config-" prefix.
const (
	NameDefaults   = "defaults"
	NameGC         = "gc"
	NameDomain     = "domain"
	NameNetwork    = "network"
	NameFeatures   = "features"
	NameDeployment = "deployment"
)

func init() {
	register(NameDefaults, func(d map[string]string) (any, error) { return ParseDefaults(d) })
	register(NameGC, func(d map[string]string) (any, error) { return ParseGC(d) })
	register(NameDomain, func(d map[string]string) (any, error) { return ParseDomain(d) })
	register(NameNetwork, func(d map[string]string) (any, error) { return ParseNetwork(d) })
	register(NameFeatures, func(d map[string]string) (any, error) { return ParseFeatures(d) })
	register(NameDeployment, func(d map[string]string) (any, error) { return ParseDeployment(d) })
}

// Defaults returns config-defaults.
func (s *Snapshot) Defaults() *Defaults { return s.Get(NameDefaults).(*Defaults) }

// GC returns config-gc.
func (s *Snapshot) GC() *GC { return s.Get(NameGC).(*GC) }

// Domain returns config-domain.
func (s *Snapshot) Domain() *Domain { return s.Get(NameDomain).(*Domain) }

// Network returns config-network.
func (s *Snapshot) Network() *Network { return s.Get(NameNetwork).(*Network) }

// Features returns config-features.
func (s *Snapshot) Features() *Features { return s.Get(NameFeatures).(*Features) }

// Deployment returns config-deployment.
func (s *Snapshot) Deployment() *Deployment { return s.Get(NameDeployment).(*Deployment) }

// Defaults is config-defaults.
type Defaults struct {
	RevisionTimeoutSeconds              int64
	MaxRevisionTimeoutSeconds           int64
	RevisionResponseStartTimeoutSeconds int64 // 0: same as the timeout
	RevisionIdleTimeoutSeconds          int64 // 0: none
	RevisionCPURequest                  string
	RevisionMemoryRequest               string
	RevisionCPULimit                    string
	RevisionMemoryLimit                 string
	ContainerNameTemplate               string
	InitContainerNameTemplate           string
	ContainerConcurrency                int64
	ContainerConcurrencyMaxLimit        int64
	AllowContainerConcurrencyZero       bool
	EnableServiceLinks                  bool
}

// ParseDefaults validates config-defaults.
func ParseDefaults(d map[string]string) (*Defaults, error) {
	if err := checkKeys(d, "revision-timeout-seconds", "max-revision-timeout-seconds", "revision-response-start-timeout-seconds",
		"revision-idle-timeout-seconds", "revision-cpu-request", "revision-memory-request", "revision-cpu-limit",
		"revision-memory-limit", "container-name-template", "init-container-name-template", "container-concurrency",
		"container-concurrency-max-limit", "allow-container-concurrency-zero", "enable-service-links",
		"revision-ephemeral-storage-request", "revision-ephemeral-storage-limit"); err != nil {
		return nil, err
	}
	c := &Defaults{}
	for _, err := range []error{
		parseInt(d, "revision-timeout-seconds", 300, 1, math.MaxInt32, &c.RevisionTimeoutSeconds),
		parseInt(d, "max-revision-timeout-seconds", 600, 1, math.MaxInt32, &c.MaxRevisionTimeoutSeconds),
		parseInt(d, "revision-response-start-timeout-seconds", 0, 0, math.MaxInt32, &c.RevisionResponseStartTimeoutSeconds),
		parseInt(d, "revision-idle-timeout-seconds", 0, 0, math.MaxInt32, &c.RevisionIdleTimeoutSeconds),
		parseString(d, "revision-cpu-request", "", nil, &c.RevisionCPURequest),
		parseString(d, "revision-memory-request", "", nil, &c.RevisionMemoryRequest),
		parseString(d, "revision-cpu-limit", "", nil, &c.RevisionCPULimit),
		parseString(d, "revision-memory-limit", "", nil, &c.RevisionMemoryLimit),
		parseString(d, "container-name-template", "user-container", nil, &c.ContainerNameTemplate),
		parseString(d, "init-container-name-template", "init-container", nil, &c.InitContainerNameTemplate),
		parseInt(d, "container-concurrency", 0, 0, 1000, &c.ContainerConcurrency),
		parseInt(d, "container-concurrency-max-limit", 1000, 1, math.MaxInt32, &c.ContainerConcurrencyMaxLimit),
		parseBool(d, "allow-container-concurrency-zero", true, &c.AllowContainerConcurrencyZero),
		parseBool(d, "enable-service-links", false, &c.EnableServiceLinks),
	} {
		if err != nil {
			return nil, err
		}
	}
	if c.RevisionTimeoutSeconds > c.MaxRevisionTimeoutSeconds {
		return nil, fmt.Errorf("revision-timeout-seconds: %d is greater than max-revision-timeout-seconds %d: %w",
			c.RevisionTimeoutSeconds, c.MaxRevisionTimeoutSeconds, errdefs.ErrInvalidArgument)
	}
	if c.ContainerConcurrency > c.ContainerConcurrencyMaxLimit {
		return nil, fmt.Errorf("container-concurrency: %d is greater than container-concurrency-max-limit %d: %w",
			c.ContainerConcurrency, c.ContainerConcurrencyMaxLimit, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// Disabled marks a GC bound as off.
const Disabled = -1

// GC is config-gc. Durations and counts of Disabled (-1) turn a bound off.
type GC struct {
	RetainSinceCreateTime     time.Duration
	RetainSinceLastActiveTime time.Duration
	MinNonActiveRevisions     int64
	MaxNonActiveRevisions     int64
}

func parseDisabledDuration(d map[string]string, key string, def time.Duration, dst *time.Duration) error {
	if strings.EqualFold(strings.TrimSpace(d[key]), "disabled") {
		*dst = Disabled
		return nil
	}
	return parseDuration(d, key, def, 0, 0, dst)
}

func parseDisabledInt(d map[string]string, key string, def int64, dst *int64) error {
	if strings.EqualFold(strings.TrimSpace(d[key]), "disabled") {
		*dst = Disabled
		return nil
	}
	return parseInt(d, key, def, 0, math.MaxInt32, dst)
}

// ParseGC validates config-gc.
func ParseGC(d map[string]string) (*GC, error) {
	if err := checkKeys(d, "retain-since-create-time", "retain-since-last-active-time", "min-non-active-revisions", "max-non-active-revisions"); err != nil {
		return nil, err
	}
	c := &GC{}
	for _, err := range []error{
		parseDisabledDuration(d, "retain-since-create-time", 48*time.Hour, &c.RetainSinceCreateTime),
		parseDisabledDuration(d, "retain-since-last-active-time", 15*time.Hour, &c.RetainSinceLastActiveTime),
		parseInt(d, "min-non-active-revisions", 20, 0, math.MaxInt32, &c.MinNonActiveRevisions),
		parseDisabledInt(d, "max-non-active-revisions", 1000, &c.MaxNonActiveRevisions),
	} {
		if err != nil {
			return nil, err
		}
	}
	if c.MaxNonActiveRevisions >= 0 && c.MinNonActiveRevisions > c.MaxNonActiveRevisions {
		return nil, fmt.Errorf("min-non-active-revisions: %d is greater than max-non-active-revisions %d: %w",
			c.MinNonActiveRevisions, c.MaxNonActiveRevisions, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// DomainRule is one entry of config-domain: routes whose labels match
// Selector get Domain. An empty selector is the default.
type DomainRule struct {
	Domain   string
	Selector map[string]string
}

// Domain is config-domain.
type Domain struct {
	Rules []DomainRule // most specific (largest selector) first
}

// ParseDomain validates config-domain: each key is a domain, each value
// empty or "selector:\n  key: value".
func ParseDomain(d map[string]string) (*Domain, error) {
	c := &Domain{}
	for dom, v := range d {
		if strings.HasPrefix(dom, "_") {
			continue
		}
		if !isDNSName(dom) {
			return nil, fmt.Errorf("%s: not a valid domain name: %w", dom, errdefs.ErrInvalidArgument)
		}
		rule := DomainRule{Domain: dom}
		if strings.TrimSpace(v) != "" {
			var spec struct {
				Selector map[string]string `json:"selector"`
			}
			if err := yaml.UnmarshalStrict([]byte(v), &spec); err != nil {
				return nil, fmt.Errorf("%s: want empty or \"selector:\" with labels: %v: %w", dom, err, errdefs.ErrInvalidArgument)
			}
			rule.Selector = spec.Selector
		}
		c.Rules = append(c.Rules, rule)
	}
	if len(c.Rules) == 0 {
		c.Rules = []DomainRule{{Domain: "example.com"}}
	}
	sort.Slice(c.Rules, func(i, j int) bool {
		if len(c.Rules[i].Selector) != len(c.Rules[j].Selector) {
			return len(c.Rules[i].Selector) > len(c.Rules[j].Selector)
		}
		return c.Rules[i].Domain < c.Rules[j].Domain
	})
	return c, nil
}

// DomainFor returns the domain for a route with these labels: the most
// specific matching rule, else "svc.cluster.local" when no default exists.
func (c *Domain) DomainFor(labels map[string]string) string {
	for _, r := range c.Rules {
		match := true
		for k, v := range r.Selector {
			if labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return r.Domain
		}
	}
	return "svc.cluster.local"
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// HTTP protocol modes of config-network http-protocol.
const (
	HTTPEnabled    = "enabled"
	HTTPRedirected = "redirected"
	HTTPDisabled   = "disabled"
)

// Network is config-network.
type Network struct {
	DomainTemplate                string
	TagTemplate                   string
	DefaultExternalScheme         string // http or https
	HTTPProtocol                  string // enabled, redirected, disabled
	AutocreateClusterDomainClaims bool
	IngressClass                  string
	// NamespaceInternalTraffic lists the namespaces whose instances may
	// call each other directly (kiln's namespace-level opt-out of the
	// default isolation; Kubernetes would use a NetworkPolicy).
	NamespaceInternalTraffic []string
}

// networkLegacyKeys maps the config-network keys Knative networking still
// reads from before its keys were kebab-cased to their current names. A
// legacy key is read only when its current one is not set.
var networkLegacyKeys = map[string]string{
	"ingress.class":                 "ingress-class",
	"domainTemplate":                "domain-template",
	"tagTemplate":                   "tag-template",
	"rolloutDuration":               "rollout-duration",
	"autocreateClusterDomainClaims": "autocreate-cluster-domain-claims",
	"defaultExternalScheme":         "default-external-scheme",
	"autoTLS":                       "auto-tls",
	"httpProtocol":                  "http-protocol",
}

// ParseNetwork validates config-network.
func ParseNetwork(d map[string]string) (*Network, error) {
	known := []string{"domain-template", "tag-template", "default-external-scheme", "http-protocol",
		"autocreate-cluster-domain-claims", "ingress-class", "auto-tls", "external-domain-tls",
		"cluster-local-domain-tls", "system-internal-tls", "enable-mesh-pod-addressability", "rollout-duration",
		"namespace-internal-traffic"}
	for legacy := range networkLegacyKeys {
		known = append(known, legacy)
	}
	if err := checkKeys(d, known...); err != nil {
		return nil, err
	}
	c := &Network{}
	lower := map[string]string{}
	for k, v := range d {
		lower[k] = v
	}
	for legacy, key := range networkLegacyKeys {
		if _, set := d[key]; !set {
			if v, ok := d[legacy]; ok {
				lower[key] = v
			}
		}
	}
	if v, ok := lower["http-protocol"]; ok {
		lower["http-protocol"] = strings.ToLower(strings.TrimSpace(v))
	}
	if v, ok := lower["default-external-scheme"]; ok {
		lower["default-external-scheme"] = strings.ToLower(strings.TrimSpace(v))
	}
	for _, err := range []error{
		parseString(lower, "domain-template", "{{.Name}}.{{.Namespace}}.{{.Domain}}", nil, &c.DomainTemplate),
		parseString(lower, "tag-template", "{{.Tag}}-{{.Name}}", nil, &c.TagTemplate),
		parseString(lower, "default-external-scheme", "http", []string{"http", "https"}, &c.DefaultExternalScheme),
		parseString(lower, "http-protocol", HTTPEnabled, []string{HTTPEnabled, HTTPRedirected, HTTPDisabled}, &c.HTTPProtocol),
		parseBool(lower, "autocreate-cluster-domain-claims", false, &c.AutocreateClusterDomainClaims),
		parseString(lower, "ingress-class", "kiln", nil, &c.IngressClass),
	} {
		if err != nil {
			return nil, err
		}
	}
	if err := checkTemplate("domain-template", c.DomainTemplate, map[string]any{"Name": "n", "Namespace": "ns", "Domain": "example.com", "Annotations": map[string]string{}, "Labels": map[string]string{}}); err != nil {
		return nil, err
	}
	if !strings.Contains(c.DomainTemplate, "{{.Name}}") || !strings.Contains(c.DomainTemplate, "{{.Namespace}}") {
		return nil, fmt.Errorf("domain-template: %q must contain {{.Name}} and {{.Namespace}}: %w", c.DomainTemplate, errdefs.ErrInvalidArgument)
	}
	if err := checkTemplate("tag-template", c.TagTemplate, map[string]any{"Name": "n", "Tag": "t"}); err != nil {
		return nil, err
	}
	for _, ns := range strings.Split(d["namespace-internal-traffic"], ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if !isDNSName(ns) || strings.Contains(ns, ".") {
			return nil, invalid("namespace-internal-traffic", ns, "want comma-separated namespace names (DNS labels)")
		}
		c.NamespaceInternalTraffic = append(c.NamespaceInternalTraffic, ns)
	}
	return c, nil
}

func checkTemplate(key, tpl string, data any) error {
	t, err := template.New(key).Option("missingkey=error").Parse(tpl)
	if err == nil {
		var b strings.Builder
		err = t.Execute(&b, data)
	}
	if err != nil {
		return fmt.Errorf("%s: invalid template %q: %v: %w", key, tpl, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Feature flag states.
const (
	FeatureEnabled  = "enabled"
	FeatureDisabled = "disabled"
	FeatureAllowed  = "allowed"
)

// Knative feature flag names kiln understands.
const (
	FeatureMultiContainer       = "multi-container"
	FeatureEmptyDir             = "kubernetes.podspec-volumes-emptydir"
	FeaturePVC                  = "kubernetes.podspec-persistent-volume-claim"
	FeaturePVCWrite             = "kubernetes.podspec-persistent-volume-write"
	FeatureInitContainers       = "kubernetes.podspec-init-containers"
	FeatureTagHeaderRouting     = "tag-header-based-routing"
	FeatureSecurityContext      = "kubernetes.podspec-securitycontext"
	FeatureFieldRef             = "kubernetes.podspec-fieldref"
	FeatureMultiContainerProbes = "multi-container-probing"
)

var featureDefaults = map[string]string{
	FeatureMultiContainer:       FeatureEnabled,
	FeatureEmptyDir:             FeatureEnabled,
	FeaturePVC:                  FeatureDisabled,
	FeaturePVCWrite:             FeatureDisabled,
	FeatureInitContainers:       FeatureDisabled,
	FeatureTagHeaderRouting:     FeatureDisabled,
	FeatureSecurityContext:      FeatureDisabled,
	FeatureFieldRef:             FeatureDisabled,
	FeatureMultiContainerProbes: FeatureDisabled,
}

// Features is config-features: flag name → enabled, disabled or allowed.
type Features struct {
	Flags map[string]string
}

// Enabled reports whether flag is enabled (or allowed).
func (f *Features) Enabled(flag string) bool {
	v := f.Flags[flag]
	return v == FeatureEnabled || v == FeatureAllowed
}

// ParseFeatures validates config-features.
func ParseFeatures(d map[string]string) (*Features, error) {
	var keys []string
	for k := range featureDefaults {
		keys = append(keys, k)
	}
	if err := checkKeys(d, keys...); err != nil {
		return nil, err
	}
	f := &Features{Flags: map[string]string{}}
	for k, def := range featureDefaults {
		f.Flags[k] = def
		if v, ok := d[k]; ok {
			v = strings.ToLower(strings.TrimSpace(v))
			if v != FeatureEnabled && v != FeatureDisabled && v != FeatureAllowed {
				return nil, invalid(k, d[k], "want enabled, disabled or allowed")
			}
			f.Flags[k] = v
		}
	}
	return f, nil
}

// Deployment is config-deployment.
type Deployment struct {
	ProgressDeadline               time.Duration
	DigestResolutionTimeout        time.Duration
	RegistriesSkippingTagResolving []string
}

// ParseDeployment validates config-deployment.
func ParseDeployment(d map[string]string) (*Deployment, error) {
	if err := checkKeys(d, "progress-deadline", "digest-resolution-timeout", "registries-skipping-tag-resolving",
		"queue-sidecar-image", "queue-sidecar-cpu-request", "queue-sidecar-memory-request"); err != nil {
		return nil, err
	}
	c := &Deployment{}
	var skip string
	for _, err := range []error{
		parseDuration(d, "progress-deadline", 600*time.Second, time.Second, 0, &c.ProgressDeadline),
		parseDuration(d, "digest-resolution-timeout", 10*time.Second, time.Second, 0, &c.DigestResolutionTimeout),
		parseString(d, "registries-skipping-tag-resolving", "kind.local,ko.local,dev.local", nil, &skip),
	} {
		if err != nil {
			return nil, err
		}
	}
	for _, r := range strings.Split(skip, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.RegistriesSkippingTagResolving = append(c.RegistriesSkippingTagResolving, r)
		}
	}
	return c, nil
}
