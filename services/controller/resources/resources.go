package resources

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func boolPtr(b bool) *bool { return &b }

func ownerRef(apiVersion, kind, name, uid string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: boolPtr(true), BlockOwnerDeletion: boolPtr(true)}}
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MakeConfiguration returns the Configuration a Service owns.
func MakeConfiguration(s *v1.Service) *v1.Configuration {
	labels := copyMap(s.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1.ServiceLabelKey] = s.Metadata.Name
	return &v1.Configuration{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindConfiguration},
		Metadata: metav1.ObjectMeta{
			Name: s.Metadata.Name, Namespace: s.Metadata.Namespace,
			Labels: labels, Annotations: copyMap(s.Metadata.Annotations),
			OwnerReferences: ownerRef(v1.APIVersion, v1.KindService, s.Metadata.Name, s.Metadata.UID),
		},
		Spec: v1.ConfigurationSpec{Template: s.Spec.Template},
	}
}

// MakeRoute returns the Route a Service owns: the Service's traffic with
// configurationName filled in for latestRevision entries.
func MakeRoute(s *v1.Service) *v1.Route {
	labels := copyMap(s.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1.ServiceLabelKey] = s.Metadata.Name
	traffic := s.Spec.Traffic
	if len(traffic) == 0 {
		traffic = []v1.TrafficTarget{{LatestRevision: boolPtr(true), Percent: int64Ptr(100)}}
	}
	var out []v1.TrafficTarget
	for _, t := range traffic {
		t.URL = ""
		if t.RevisionName == "" {
			t.ConfigurationName = s.Metadata.Name
			if t.LatestRevision == nil {
				t.LatestRevision = boolPtr(true)
			}
		}
		out = append(out, t)
	}
	return &v1.Route{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindRoute},
		Metadata: metav1.ObjectMeta{
			Name: s.Metadata.Name, Namespace: s.Metadata.Namespace,
			Labels: labels, Annotations: copyMap(s.Metadata.Annotations),
			OwnerReferences: ownerRef(v1.APIVersion, v1.KindService, s.Metadata.Name, s.Metadata.UID),
		},
		Spec: v1.RouteSpec{Traffic: out},
	}
}

func int64Ptr(i int64) *int64 { return &i }

// RevisionName is the name of the Revision stamped from c's current
// generation: the template's name when the user chose one, else
// <config>-<generation, 5 digits>.
func RevisionName(c *v1.Configuration) string {
	if n := c.Spec.Template.Metadata.Name; n != "" {
		return n
	}
	return fmt.Sprintf("%s-%05d", c.Metadata.Name, c.Metadata.Generation)
}

// MakeRevision stamps the Revision for c's current generation.
func MakeRevision(c *v1.Configuration) *v1.Revision {
	t := c.Spec.Template
	labels := copyMap(t.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1.ConfigurationLabelKey] = c.Metadata.Name
	labels[v1.ConfigurationGenerationLabel] = fmt.Sprint(c.Metadata.Generation)
	if svc := c.Metadata.Labels[v1.ServiceLabelKey]; svc != "" {
		labels[v1.ServiceLabelKey] = svc
	}
	return &v1.Revision{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindRevision},
		Metadata: metav1.ObjectMeta{
			Name: RevisionName(c), Namespace: c.Metadata.Namespace,
			Labels: labels, Annotations: copyMap(t.Metadata.Annotations),
			OwnerReferences: ownerRef(v1.APIVersion, v1.KindConfiguration, c.Metadata.Name, c.Metadata.UID),
		},
		Spec: t.Spec,
	}
}

// DomainConfig shapes route URLs (Knative's config-domain and
// config-network domain-template / tag-template).
type DomainConfig struct {
	Domain         string // default "example.com"
	DomainTemplate string // default "{{.Name}}.{{.Namespace}}.{{.Domain}}"
	TagTemplate    string // default "{{.Tag}}-{{.Name}}"
	Scheme         string // default "http"
	// ClusterLocal renders NAME.NAMESPACE.svc.cluster.local hosts instead
	// (set through ForVisibility).
	ClusterLocal bool
}

// WithDefaults fills unset fields.
func (d DomainConfig) WithDefaults() DomainConfig {
	if d.Domain == "" {
		d.Domain = "example.com"
	}
	if d.DomainTemplate == "" {
		d.DomainTemplate = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
	}
	if d.TagTemplate == "" {
		d.TagTemplate = "{{.Tag}}-{{.Name}}"
	}
	if d.Scheme == "" {
		d.Scheme = "http"
	}
	return d
}

// Host renders the host of route name in ns ("" tag = the route itself).
func (d DomainConfig) Host(name, ns, tag string) (string, error) {
	d = d.WithDefaults()
	if d.ClusterLocal {
		return d.ClusterLocalHost(name, ns, tag)
	}
	if tag != "" {
		n, err := render(d.TagTemplate, map[string]string{"Tag": tag, "Name": name})
		if err != nil {
			return "", fmt.Errorf("tag template: %w", err)
		}
		name = n
	}
	labels := map[string]string{}
	h, err := render(d.DomainTemplate, map[string]any{"Name": name, "Namespace": ns, "Domain": d.Domain, "Annotations": map[string]string{}, "Labels": labels})
	if err != nil {
		return "", fmt.Errorf("domain template: %w", err)
	}
	return strings.ToLower(h), nil
}

func render(tpl string, data any) (string, error) {
	t, err := template.New("t").Option("missingkey=error").Parse(tpl)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Resolver answers what the Route needs about its targets.
type Resolver interface {
	// LatestReady returns the latest ready revision of a configuration, or
	// "" when it has none (or the configuration does not exist), and
	// whether the configuration has failed (Ready=False).
	LatestReady(configuration string) (revision string, failed bool)
	// RevisionReady reports whether the named revision exists, is Ready,
	// and has failed (Ready=False).
	RevisionReady(revision string) (exists, ready, failed bool)
}

// TrafficError explains why traffic could not be resolved. Failed means it
// will not resolve by waiting (a target failed): Knative's Route then goes
// AllTrafficAssigned=False rather than Unknown.
type TrafficError struct {
	Reason, Message string
	Failed          bool
}

func (e *TrafficError) Error() string { return e.Reason + ": " + e.Message }

// ResolveTraffic turns a Route's spec.traffic into status.traffic with
// concrete revision names and tag URLs. Its errors carry Knative's route
// reasons and messages (RouteStatus.MarkRevisionFailed and friends).
func ResolveTraffic(r *v1.Route, dc DomainConfig, res Resolver) ([]v1.TrafficTarget, *TrafficError) {
	var out []v1.TrafficTarget
	for _, t := range r.Spec.Traffic {
		st := v1.TrafficTarget{Tag: t.Tag, Percent: t.Percent, LatestRevision: t.LatestRevision}
		switch {
		case t.RevisionName != "":
			exists, ready, failed := res.RevisionReady(t.RevisionName)
			if !exists {
				return nil, &TrafficError{"RevisionMissing", fmt.Sprintf("Revision %q referenced in traffic not found.", t.RevisionName), true}
			}
			if failed {
				return nil, &TrafficError{"RevisionMissing", fmt.Sprintf("Revision %q failed to become ready.", t.RevisionName), true}
			}
			if !ready {
				return nil, &TrafficError{"RevisionMissing", fmt.Sprintf("Revision %q is not yet ready.", t.RevisionName), false}
			}
			st.RevisionName = t.RevisionName
			if st.LatestRevision == nil {
				st.LatestRevision = boolPtr(false)
			}
		case t.ConfigurationName != "":
			rev, failed := res.LatestReady(t.ConfigurationName)
			if rev == "" && failed {
				return nil, &TrafficError{"RevisionMissing", fmt.Sprintf("Configuration %q does not have any ready Revision.", t.ConfigurationName), true}
			}
			if rev == "" {
				return nil, &TrafficError{"RevisionMissing", fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", t.ConfigurationName), false}
			}
			st.RevisionName = rev
			st.LatestRevision = boolPtr(true)
		default:
			return nil, &TrafficError{"RevisionMissing", "traffic target names neither a revision nor a configuration", true}
		}
		if t.Tag != "" {
			h, err := dc.Host(r.Metadata.Name, r.Metadata.Namespace, t.Tag)
			if err != nil {
				return nil, &TrafficError{"DomainTemplateError", err.Error(), true}
			}
			st.URL = dc.WithDefaults().Scheme + "://" + h
		}
		out = append(out, st)
	}
	return out, nil
}
