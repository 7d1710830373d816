package apiserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kiln-serving/kiln/api/errdefs"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// Field selectors Kubernetes supports on every custom resource.
const (
	fieldName      = "metadata.name"
	fieldNamespace = "metadata.namespace"
)

// Messages Kubernetes answers with when a list cannot be served.
const (
	continueTooOld = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
	listTooOld     = "The resourceVersion for the provided list is too old."
	watchTooOld    = "The resourceVersion for the provided watch is too old."
)

// parseListOptions reads a list or watch query with apimachinery's own
// parameter codec and validation, so selectors, limits and
// resourceVersionMatch mean and fail exactly as on Kubernetes. Field
// selectors may name metadata.name, metadata.namespace and extraFields.
func parseListOptions(r *http.Request, extraFields ...string) (*internalversion.ListOptions, error) {
	var opts internalversion.ListOptions
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), k8smeta.SchemeGroupVersion, &opts); err != nil {
		return nil, k8serrors.NewBadRequest(err.Error())
	}
	if errs := validation.ValidateListOptions(&opts, true); len(errs) > 0 {
		return nil, k8serrors.NewInvalid(schema.GroupKind{Group: k8smeta.GroupName, Kind: "ListOptions"}, "", errs)
	}
	if opts.FieldSelector != nil {
		for _, req := range opts.FieldSelector.Requirements() {
			if req.Field != fieldName && req.Field != fieldNamespace && !slices.Contains(extraFields, req.Field) {
				return nil, k8serrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	return &opts, nil
}

// matcher is a list's label and field selectors.
type matcher struct {
	label labels.Selector
	field fields.Selector
}

func matcherFor(opts *internalversion.ListOptions) matcher {
	return matcher{label: opts.LabelSelector, field: opts.FieldSelector}
}

// empty reports whether every object matches.
func (m matcher) empty() bool {
	return (m.label == nil || m.label.Empty()) && (m.field == nil || m.field.Empty())
}

func (m matcher) matches(o v1.Object) bool {
	meta := o.Meta()
	if m.label != nil && !m.label.Matches(labels.Set(meta.Labels)) {
		return false
	}
	return m.field == nil || m.field.Matches(fields.Set{fieldName: meta.Name, fieldNamespace: meta.Namespace})
}

// matchesItem reports whether a watched object matches.
func (m matcher) matchesItem(it watchItem) bool {
	if m.label != nil && !m.label.Matches(labels.Set(it.labels)) {
		return false
	}
	return m.field == nil || m.field.Matches(it.fields)
}

// objectKey orders objects as the store does (namespace, then name).
func objectKey(o v1.Object) string { return o.Meta().Namespace + "/" + o.Meta().Name }

// continueToken is the opaque continue of a limited list: the revision the
// first page was read at and the last key returned, so every page comes
// from the same snapshot. It has the shape of Kubernetes' own token.
type continueToken struct {
	APIVersion string `json:"v"`
	RV         int64  `json:"rv"`
	Start      string `json:"start"`
}

const continueVersion = "meta.k8s.io/v1"

func encodeContinue(rv int64, last string) string {
	b, _ := json.Marshal(continueToken{APIVersion: continueVersion, RV: rv, Start: last})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var tok continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return tok, k8serrors.NewBadRequest(fmt.Sprintf("invalid continue token: continue key is not valid: %v", err))
	}
	if err := json.Unmarshal(b, &tok); err != nil {
		return tok, k8serrors.NewBadRequest(fmt.Sprintf("invalid continue token: continue key is not valid: %v", err))
	}
	switch {
	case tok.APIVersion != continueVersion:
		return tok, k8serrors.NewBadRequest(fmt.Sprintf("invalid continue token: continue key is not valid: server does not recognize this encoded version %q", tok.APIVersion))
	case tok.RV <= 0:
		return tok, k8serrors.NewBadRequest("invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	case tok.Start == "":
		return tok, k8serrors.NewBadRequest("invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")
	}
	return tok, nil
}

// parseRV reads a resourceVersion query parameter.
func parseRV(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, k8serrors.NewBadRequest(fmt.Sprintf("invalid resource version: %s", v))
	}
	return n, nil
}

// tooLargeRV is Kubernetes' answer to a resourceVersion the store has not
// reached.
func tooLargeRV(want, current int64) error {
	return &k8serrors.StatusError{ErrStatus: Status{Status: k8smeta.StatusFailure, Code: http.StatusGatewayTimeout,
		Reason:  k8smeta.StatusReasonTimeout,
		Message: fmt.Sprintf("Too large resource version: %d, current: %d", want, current),
		Details: &StatusDetails{RetryAfterSeconds: 1, Causes: []k8smeta.StatusCause{{Type: k8smeta.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}}}}
}

func (s *server) handleList(w http.ResponseWriter, r *http.Request) {
	a, res, ok := s.lookup(w, r)
	if !ok {
		return
	}
	opts, err := parseListOptions(r)
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	if opts.Watch {
		s.serveWatch(w, r, a, servingSource{res}, opts)
		return
	}
	ctx, ns := r.Context(), r.PathValue("ns")
	var at, atLeast int64
	var start string
	switch {
	case opts.Continue != "":
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
			s.failFor(w, r, k8serrors.NewBadRequest("specifying resource version is not allowed when using continue"), a, "")
			return
		}
		tok, err := decodeContinue(opts.Continue)
		if err != nil {
			s.failFor(w, r, err, a, "")
			return
		}
		at, start = tok.RV, tok.Start
	case opts.ResourceVersion == "" || opts.ResourceVersion == "0":
		// The latest state; "0" (any) is served from it too.
	default:
		n, err := parseRV(opts.ResourceVersion)
		if err != nil {
			s.failFor(w, r, err, a, "")
			return
		}
		// Without a match, a limited list at a revision is exact (legacy
		// Kubernetes semantics); otherwise "not older than".
		if opts.ResourceVersionMatch == k8smeta.ResourceVersionMatchExact || (opts.ResourceVersionMatch == "" && opts.Limit > 0) {
			at = n
		} else {
			atLeast = n
		}
	}
	items, rev, err := res.list(ctx, ns, at)
	switch {
	case err != nil && isExpired(err) && opts.Continue != "":
		err = errExpired(continueTooOld)
	case err != nil && isExpired(err):
		err = errExpired(listTooOld)
	case err != nil && errors.Is(err, errdefs.ErrInvalidArgument):
		_, cur, lerr := res.list(ctx, ns, 0)
		if lerr == nil {
			err = tooLargeRV(at, cur)
		}
	case err == nil && atLeast > rev:
		err = tooLargeRV(atLeast, rev)
	}
	if err != nil {
		s.failFor(w, r, err, a, "")
		return
	}
	m := matcherFor(opts)
	matched := make([]v1.Object, 0, len(items))
	for _, o := range items {
		if (start == "" || objectKey(o) > start) && m.matches(o) {
			matched = append(matched, o)
		}
	}
	meta := k8smeta.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}
	if opts.Limit > 0 && int64(len(matched)) > opts.Limit {
		rest := int64(len(matched)) - opts.Limit
		matched = matched[:opts.Limit]
		meta.Continue = encodeContinue(rev, objectKey(matched[len(matched)-1]))
		// Kubernetes counts what remains only when it need not filter.
		if m.empty() {
			meta.RemainingItemCount = &rest
		}
	}
	if wantsTable(r) {
		objs := make([]any, len(matched))
		for i, o := range matched {
			objs[i] = o
		}
		writeTable(w, r, a, objs, meta.ResourceVersion, meta.Continue)
		return
	}
	writeJSON(w, http.StatusOK, List{APIVersion: listAPIVersion(res), Kind: a.Kind + "List", Metadata: meta, Items: matched})
}
