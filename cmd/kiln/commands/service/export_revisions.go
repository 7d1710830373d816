package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"

	"sigs.k8s.io/yaml"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// kn's `service export --with-revisions` (experimental in kn 1.x): the
// Service plus every revision its traffic names, in one of two modes.
//   - replay: a v1 List of Services, one per routed revision (oldest
//     generation first) with that revision's spec and name in the
//     template, then the current Service; applying the list in order
//     re-creates the revisions under their names, then the traffic.
//   - export: kn's client.knative.dev/v1alpha1 Export, the Service and
//     the routed revisions side by side (what `kn service import` reads).
const (
	exportModeReplay = "replay"
	exportModeExport = "export"

	exportAPIVersion = "client.knative.dev/v1alpha1"
	exportKind       = "Export"
)

// Annotations kn leaves out of an export: they describe who and when, not
// what to deploy.
var (
	ignoredServiceAnnotations  = []string{"serving.knative.dev/creator", "serving.knative.dev/lastModifier", "kubectl.kubernetes.io/last-applied-configuration"}
	ignoredRevisionAnnotations = []string{"serving.knative.dev/lastPinned", "serving.knative.dev/creator", "serving.knative.dev/routingStateModified"}
)

var errExportMode = errors.New("'service export --with-revisions' requires a mode, please specify one of replay|export")

// exportWithRevisions renders svc and revs (all revisions of any service in
// the namespace; filtered here) in mode as YAML or JSON.
func exportWithRevisions(svc *v1.Service, revs []v1.Revision, mode string, asJSON bool) ([]byte, error) {
	if mode != exportModeReplay && mode != exportModeExport {
		return nil, errExportMode
	}
	var own []v1.Revision
	for _, r := range revs {
		if r.Metadata.Labels[v1.ServiceLabelKey] == svc.Metadata.Name {
			own = append(own, r)
		}
	}
	if len(own) == 0 {
		return nil, fmt.Errorf("no revisions found for the service %s", svc.Metadata.Name)
	}
	sortByGeneration(own)
	routed := map[string]bool{}
	for _, t := range svc.Spec.Traffic {
		if t.RevisionName != "" {
			routed[t.RevisionName] = true
		}
	}
	// The current template's revision is the Service itself.
	var older []v1.Revision
	for _, r := range own {
		if routed[r.Metadata.Name] && r.Metadata.Name != svc.Spec.Template.Metadata.Name {
			older = append(older, r)
		}
	}
	latest := exportedService(svc, len(own) > 1)

	var doc map[string]any
	if mode == exportModeReplay {
		items := make([]any, 0, len(older)+1)
		for i := range older {
			items = append(items, exportDocument(serviceFromRevision(svc, &older[i])))
		}
		items = append(items, exportDocument(latest))
		doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	} else {
		revItems := make([]any, 0, len(older))
		for i := range older {
			revItems = append(revItems, exportDocument(exportedRevision(&older[i])))
		}
		spec := map[string]any{"service": exportDocument(latest)}
		if len(revItems) > 0 {
			spec["revisions"] = revItems
		}
		doc = map[string]any{"apiVersion": exportAPIVersion, "kind": exportKind, "spec": spec}
	}
	if asJSON {
		b, err := json.MarshalIndent(doc, "", "  ")
		return append(b, '\n'), err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(b)
}

// exportedService is svc as kn exports it: name, labels, annotations and
// the template; the traffic only when there is more than one revision to
// split it across.
func exportedService(svc *v1.Service, withTraffic bool) *v1.Service {
	out := &v1.Service{Metadata: metav1.ObjectMeta{
		Name: svc.Metadata.Name, Labels: maps.Clone(svc.Metadata.Labels), Annotations: stripped(svc.Metadata.Annotations, ignoredServiceAnnotations),
	}}
	out.APIVersion, out.Kind = v1.APIVersion, v1.KindService
	out.Spec.Template = svc.Spec.Template
	if withTraffic {
		out.Spec.RouteSpec = svc.Spec.RouteSpec
	}
	return out
}

// serviceFromRevision is the Service that, applied, creates rev again
// under its name.
func serviceFromRevision(svc *v1.Service, rev *v1.Revision) *v1.Service {
	out := exportedService(svc, false)
	out.Spec.Template.Spec = rev.Spec
	out.Spec.Template.Metadata.Annotations = stripped(rev.Metadata.Annotations, ignoredRevisionAnnotations)
	out.Spec.Template.Metadata.Name = rev.Metadata.Name
	return out
}

func exportedRevision(rev *v1.Revision) *v1.Revision {
	out := &v1.Revision{Metadata: metav1.ObjectMeta{
		Name: rev.Metadata.Name, Labels: maps.Clone(rev.Metadata.Labels), Annotations: stripped(rev.Metadata.Annotations, ignoredRevisionAnnotations),
	}, Spec: rev.Spec}
	out.APIVersion, out.Kind = v1.APIVersion, v1.KindRevision
	return out
}

func stripped(m map[string]string, drop []string) map[string]string {
	out := maps.Clone(m)
	for _, k := range drop {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// exportDocument is obj as a generic document with kn's empty status and
// null creation timestamps, so it reads like kn's output.
func exportDocument(obj any) map[string]any {
	b, _ := json.Marshal(obj)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["status"] = map[string]any{}
	if meta, ok := m["metadata"].(map[string]any); ok {
		meta["creationTimestamp"] = nil
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			tm, _ := tmpl["metadata"].(map[string]any)
			if tm == nil {
				tm = map[string]any{}
				tmpl["metadata"] = tm
			}
			tm["creationTimestamp"] = nil
		}
	}
	return m
}

// sortByGeneration orders revisions as kn does: configuration generation
// ascending, then name descending (also when a generation is missing).
func sortByGeneration(revs []v1.Revision) {
	sort.SliceStable(revs, func(i, j int) bool {
		a, b := revs[i].Metadata, revs[j].Metadata
		ag, aerr := strconv.Atoi(a.Labels[v1.ConfigurationGenerationLabel])
		bg, berr := strconv.Atoi(b.Labels[v1.ConfigurationGenerationLabel])
		if aerr != nil || berr != nil || ag == bg {
			return a.Name > b.Name
		}
		return ag < bg
	})
}
