package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// bodyMediaTypes are the request bodies Kubernetes names in a 415 for a
// custom resource (which it, like kiln, reads only as JSON or YAML).
var bodyMediaTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}

// unsupportedMediaType is Kubernetes' 415 for a body it cannot read.
func unsupportedMediaType(accepted []string) error {
	return &k8serrors.StatusError{ErrStatus: Status{Status: k8smeta.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  k8smeta.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s", strings.Join(accepted, ", "))}}
}

// mediaType is the request's Content-Type without parameters; empty means
// JSON, as Kubernetes assumes.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// readRaw reads a bounded request body.
func readRaw(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest(fmt.Errorf("read body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if len(body) > maxBody {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, reason: "RequestEntityTooLarge",
			err: fmt.Errorf("Request entity too large: limit is %d", maxBody)}
	}
	return body, nil
}

// readBody reads a JSON or YAML request body as JSON; any other
// Content-Type is 415.
func readBody(r *http.Request) ([]byte, error) {
	mt := mediaType(r)
	if mt != "application/json" && mt != "application/yaml" {
		return nil, unsupportedMediaType(bodyMediaTypes)
	}
	body, err := readRaw(r)
	if err != nil {
		return nil, err
	}
	if mt == "application/yaml" {
		if body, err = yaml.YAMLToJSON(body); err != nil {
			return nil, badRequest(fmt.Errorf("malformed YAML body: %v: %w", err, errdefs.ErrInvalidArgument))
		}
	}
	return body, nil
}

// checkGenerateName validates metadata.generateName and the name made from
// it as Kubernetes does: the prefix (less a trailing dash) and the name must
// be DNS-1123 subdomains.
func checkGenerateName(a apiResource, prefix, name string) error {
	var errs field.ErrorList
	for _, msg := range apivalidation.NameIsDNSSubdomain(prefix, true) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "generateName"), prefix, msg))
	}
	for _, msg := range apivalidation.NameIsDNSSubdomain(name, false) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), name, msg))
	}
	if len(errs) > 0 {
		return k8serrors.NewInvalid(schema.GroupKind{Group: a.Group, Kind: a.Kind}, name, errs)
	}
	return nil
}

// generatedName is Kubernetes' SimpleNameGenerator: the prefix, cut so the
// name fits 63 characters, and five random lowercase alphanumerics.
func generatedName(prefix string) string {
	const maxNameLength, randomLength = 63, 5
	if len(prefix) > maxNameLength-randomLength {
		prefix = prefix[:maxNameLength-randomLength]
	}
	return prefix + rand.String(randomLength)
}

type subjectKey struct{}

// withSubject records the authenticated subject for the handlers.
func withSubject(ctx context.Context, s Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, s)
}

// subjectFrom is the request's authenticated subject; ok is false on an
// insecure server, which authenticates nobody.
func subjectFrom(ctx context.Context) (Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(Subject)
	return s, ok
}

// tracksModifier reports whether a's objects carry Knative's creator and
// lastModifier annotations (every user-written serving kind).
func tracksModifier(a apiResource) bool {
	switch a.Resource {
	case "services", "configurations", "routes", "domainmappings":
		return a.Group == servingGroup
	}
	return false
}

// setCreator stamps a new object with its creator and last modifier, as
// Knative's defaulting webhook does; whatever the user sent is overwritten.
func setCreator(ctx context.Context, a apiResource, obj v1.Object) {
	subj, ok := subjectFrom(ctx)
	if !ok || !tracksModifier(a) {
		return
	}
	m := obj.Meta()
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[v1.CreatorAnnotation] = subj.Name
	m.Annotations[v1.LastModifierAnnotation] = subj.Name
}

// keepCreator keeps the stored creator and last modifier on an update, and
// names the user as last modifier when the update changes spec.
func keepCreator(ctx context.Context, a apiResource, cur, obj v1.Object) {
	if !tracksModifier(a) {
		return
	}
	m, cm := obj.Meta(), cur.Meta()
	set := func(k, v string) {
		if v == "" {
			delete(m.Annotations, k)
			return
		}
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[k] = v
	}
	set(v1.CreatorAnnotation, cm.Annotations[v1.CreatorAnnotation])
	modifier := cm.Annotations[v1.LastModifierAnnotation]
	if subj, ok := subjectFrom(ctx); ok && !jsonEqual(specOf(cur), specOf(obj)) {
		modifier = subj.Name
	}
	set(v1.LastModifierAnnotation, modifier)
}

func specOf(obj v1.Object) json.RawMessage {
	b, _ := json.Marshal(obj)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m["spec"]
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// fieldManager is the request's field manager: the fieldManager parameter,
// else the User-Agent's first path segment (kubectl/v1.32.0 → kubectl), as
// Kubernetes derives it.
func fieldManager(r *http.Request) string {
	if fm := r.URL.Query().Get("fieldManager"); fm != "" {
		return fm
	}
	ua := strings.Split(r.Header.Get("User-Agent"), "/")[0]
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

// withManagedFields runs updateManagedFields over obj's JSON (live: the
// stored object, nil on create) and decodes the result back.
func withManagedFields(a apiResource, res resource, r *http.Request, live, obj v1.Object, manager, operation string) (v1.Object, error) {
	var liveJSON []byte
	if live != nil {
		var err error
		if liveJSON, err = marshalObject(live); err != nil {
			return nil, err
		}
	}
	objJSON, err := marshalObject(obj)
	if err != nil {
		return nil, err
	}
	out, err := updateManagedFields(a, liveJSON, objJSON, manager, operation)
	if err != nil {
		return nil, err
	}
	if string(out) == string(objJSON) {
		return obj, nil
	}
	rv := obj.Meta().ResourceVersion
	next, err := decodeObject(r, res, out)
	if err != nil {
		return nil, err
	}
	next.Meta().ResourceVersion = rv
	return next, nil
}

// deleteOptions reads DeleteOptions from the body (JSON or YAML, optional)
// and the query, and validates them as Kubernetes does.
func deleteOptions(r *http.Request) (*k8smeta.DeleteOptions, error) {
	var opts k8smeta.DeleteOptions
	body, err := readRaw(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		mt := mediaType(r)
		if mt != "application/json" && mt != "application/yaml" {
			return nil, unsupportedMediaType(bodyMediaTypes)
		}
		if err := yaml.Unmarshal(body, &opts); err != nil {
			return nil, k8serrors.NewBadRequest(fmt.Sprintf("the body of the request could not be decoded as DeleteOptions: %v", err))
		}
	}
	q := r.URL.Query()
	if v := q.Get("propagationPolicy"); v != "" {
		p := k8smeta.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, k8serrors.NewBadRequest(fmt.Sprintf("orphanDependents=%q: not a boolean", v))
		}
		opts.OrphanDependents = &b
	}
	if v := q["dryRun"]; len(v) > 0 {
		opts.DryRun = v
	}
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, k8serrors.NewBadRequest(fmt.Sprintf("gracePeriodSeconds=%q: not an integer", v))
		}
		opts.GracePeriodSeconds = &n
	}
	var errs field.ErrorList
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		errs = append(errs, field.Invalid(field.NewPath("propagationPolicy"), opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set"))
	}
	if p := opts.PropagationPolicy; p != nil && *p != k8smeta.DeletePropagationForeground &&
		*p != k8smeta.DeletePropagationBackground && *p != k8smeta.DeletePropagationOrphan {
		errs = append(errs, field.NotSupported(field.NewPath("propagationPolicy"), *p, []string{
			string(k8smeta.DeletePropagationForeground), string(k8smeta.DeletePropagationBackground), string(k8smeta.DeletePropagationOrphan), "nil"}))
	}
	for i, d := range opts.DryRun {
		if d != k8smeta.DryRunAll {
			errs = append(errs, field.NotSupported(field.NewPath("dryRun").Index(i), d, []string{k8smeta.DryRunAll}))
		}
	}
	if len(errs) > 0 {
		return nil, k8serrors.NewInvalid(schema.GroupKind{Group: k8smeta.GroupName, Kind: "DeleteOptions"}, "", errs)
	}
	return &opts, nil
}

// orphans reports whether the delete leaves the object's children behind.
func orphans(opts *k8smeta.DeleteOptions) bool {
	if opts.PropagationPolicy != nil {
		return *opts.PropagationPolicy == k8smeta.DeletePropagationOrphan
	}
	return opts.OrphanDependents != nil && *opts.OrphanDependents
}

// checkPreconditions answers 409 when DeleteOptions.preconditions name
// another uid or resourceVersion than the stored object's, in Kubernetes'
// words (which name the kind, not the resource).
func checkPreconditions(a apiResource, name string, pre *k8smeta.Preconditions, m *metav1.ObjectMeta) error {
	if pre == nil {
		return nil
	}
	gk := schema.GroupResource{Group: a.Group, Resource: a.Kind}
	if pre.UID != nil && string(*pre.UID) != string(m.UID) {
		return k8serrors.NewConflict(gk, name, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *pre.UID, m.UID))
	}
	if pre.ResourceVersion != nil && *pre.ResourceVersion != m.ResourceVersion {
		return k8serrors.NewConflict(gk, name, fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *pre.ResourceVersion, m.ResourceVersion))
	}
	return nil
}

// orphan removes the owner references to owner from every serving object
// of its namespace, so the controller's garbage collection (which follows
// owner UIDs) keeps them when owner is deleted with propagationPolicy=Orphan.
func (s *server) orphan(ctx context.Context, owner *metav1.ObjectMeta) error {
	for _, res := range s.res {
		items, _, err := res.list(ctx, owner.Namespace, 0)
		if err != nil {
			return err
		}
		for _, child := range items {
			if err := s.dropOwner(ctx, res, child, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *server) dropOwner(ctx context.Context, res resource, child v1.Object, owner *metav1.ObjectMeta) error {
	for attempt := 0; ; attempt++ {
		m := child.Meta()
		var kept []metav1.OwnerReference
		for _, ref := range m.OwnerReferences {
			if string(ref.UID) != string(owner.UID) {
				kept = append(kept, ref)
			}
		}
		if len(kept) == len(m.OwnerReferences) {
			return nil
		}
		m.OwnerReferences = kept
		_, err := res.update(ctx, child)
		if errdefs.IsNotFound(err) {
			return nil
		}
		if !errdefs.IsConflict(err) || attempt >= casRetries {
			if err != nil {
				return fmt.Errorf("orphan %s %s/%s: %w", res.kind(), m.Namespace, m.Name, err)
			}
			s.log.Info("orphaned", "kind", res.kind(), "namespace", m.Namespace, "name", m.Name, "owner_uid", owner.UID)
			return nil
		}
		if child, err = res.get(ctx, m.Namespace, m.Name); err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
}

// applyPatchType is server-side apply's Content-Type.
const applyPatchType = "application/apply-patch+yaml"

// handlePatch serves PATCH .../NAME: patchObject computes the new object
// from the live one; it is then decoded strictly, defaulted, validated and
// written with a CAS on the live resourceVersion, the whole patch retried
// when the controller wrote in between. A resourceVersion in the patch that
// is not the live one is 409, as Kubernetes answers.
func (s *server) handlePatch(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !res.userWritable() {
		s.failFor(w, r, k8serrors.NewMethodNotSupported(a.GroupResource(), "patch"), a, name)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	ct := mediaType(r)
	body, err := readRaw(r)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	force := r.URL.Query().Get("force") == "true"
	manager := fieldManager(r)
	ctx, err := s.configContext(r.Context())
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	for attempt := 0; ; attempt++ {
		var liveJSON []byte
		cur, err := res.get(ctx, ns, name)
		switch {
		case errdefs.IsNotFound(err) && ct == applyPatchType:
			// Server-side apply of an absent object creates it.
			s.applyCreate(w, r, a, res, body, manager, force, dry)
			return
		case err != nil:
			s.failFor(w, r, err, a, name)
			return
		}
		if liveJSON, err = marshalObject(cur); err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		patched, err := patchObject(a, liveJSON, ct, body, manager, force)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		obj, err := decodeObject(r, res, patched)
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		if rv := obj.Meta().ResourceVersion; rv != "" && rv != cur.Meta().ResourceVersion {
			s.failFor(w, r, errdefs.ErrConflict, a, name)
			return
		}
		if err := fillTarget(obj, ns, name); err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		operation := "Update"
		if ct == applyPatchType {
			operation = "Apply" // patchObject has recorded the apply's managed fields
		}
		updated, err := s.update(ctx, r, a, res, cur, obj, dry, operation)
		if errdefs.IsConflict(err) && attempt < casRetries {
			continue
		}
		if err != nil {
			s.failFor(w, r, err, a, name)
			return
		}
		writeJSON(w, http.StatusOK, updated)
		return
	}
}

// applyCreate creates the object a server-side apply names when it does
// not exist yet.
func (s *server) applyCreate(w http.ResponseWriter, r *http.Request, a apiResource, res resource, body []byte, manager string, force, dry bool) {
	name := r.PathValue("name")
	patched, err := patchObject(a, nil, applyPatchType, body, manager, force)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	obj, err := decodeObject(r, res, patched)
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	if obj.Meta().Name != name {
		s.failFor(w, r, badRequest(fmt.Errorf("the name of the object (%s) does not match the name on the URL (%s)", obj.Meta().Name, name)), a, name)
		return
	}
	created, code, err := s.create(r, a, res, obj, dry, "Apply")
	if err != nil {
		s.failFor(w, r, err, a, name)
		return
	}
	writeJSON(w, code, created)
}
