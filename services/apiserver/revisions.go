package apiserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Revisions are stamped by the controller, and also created by clients
// that carry them from elsewhere (kn service import): Knative accepts a
// Revision whose controlling owner is a Configuration of its namespace,
// and that Configuration treats it as one of its own. A Revision is never
// updated by a user either way (handleUpdate refuses it).

// createdByClients reports whether users may create objects of res even
// though they may not update them.
func createdByClients(res resource) bool { return res.kind() == v1.KindRevision }

// admitRevision checks a client's Revision (already defaulted and
// validated like the controller's) against the Configuration it names as
// its controller: that Configuration must exist in the Revision's
// namespace with the referenced UID, else the create is invalid
// (metadata.ownerReferences). It then labels the Revision as the
// controller labels its own, where the client did not: configuration,
// configurationGeneration (the Configuration's current generation) and
// service (when a Service controls the Configuration). obj of another kind
// passes unchanged.
func (s *server) admitRevision(ctx context.Context, obj v1.Object) error {
	rev, ok := obj.(*v1.Revision)
	if !ok {
		return nil
	}
	m := &rev.Metadata
	invalid := func(fe *v1.FieldError) error {
		return fmt.Errorf("%s %q is invalid: %w", v1.KindRevision, m.Name, fe)
	}
	const path = "metadata.ownerReferences"
	owner := controllerRef(m)
	if owner == nil {
		return invalid(v1.ErrGeneric("a Revision is created by the controller, or with a controlling owner reference (controller: true) to its Configuration", path))
	}
	if group, _, _ := strings.Cut(owner.APIVersion, "/"); group != v1.Group || owner.Kind != v1.KindConfiguration {
		return invalid(v1.ErrInvalidValue(owner.APIVersion+", Kind="+owner.Kind, path,
			"the controlling owner of a Revision must be a "+v1.APIVersion+" Configuration"))
	}
	got, err := s.res[resKey(v1.Group, v1.ResourceConfigurations)].get(ctx, m.Namespace, owner.Name)
	if errdefs.IsNotFound(err) {
		return invalid(v1.ErrInvalidValue(owner.Name, path,
			fmt.Sprintf("Configuration %q does not exist in namespace %q", owner.Name, m.Namespace)))
	}
	if err != nil {
		return err
	}
	cfg := got.(*v1.Configuration)
	if owner.UID != cfg.Metadata.UID {
		return invalid(v1.ErrInvalidValue(owner.UID, path,
			fmt.Sprintf("Configuration %q has UID %q", owner.Name, cfg.Metadata.UID)))
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	setIfMissing := func(k, v string) {
		if _, ok := m.Labels[k]; !ok && v != "" {
			m.Labels[k] = v
		}
	}
	setIfMissing(v1.ConfigurationLabelKey, cfg.Metadata.Name)
	setIfMissing(v1.ConfigurationGenerationLabel, strconv.FormatInt(cfg.Metadata.Generation, 10))
	if c := controllerRef(&cfg.Metadata); c != nil && c.Kind == v1.KindService {
		setIfMissing(v1.ServiceLabelKey, c.Name)
	}
	if m.Labels[v1.ConfigurationLabelKey] != cfg.Metadata.Name {
		return invalid(v1.ErrInvalidValue(m.Labels[v1.ConfigurationLabelKey], "metadata.labels."+v1.ConfigurationLabelKey,
			fmt.Sprintf("the Revision's controlling owner is Configuration %q", cfg.Metadata.Name)))
	}
	return nil
}

func controllerRef(m *metav1.ObjectMeta) *metav1.OwnerReference {
	for i, o := range m.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return &m.OwnerReferences[i]
		}
	}
	return nil
}
