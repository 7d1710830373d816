package apiserver

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/munnerz/goautoneg"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// Media types of core/v1 bodies. client-go's typed clients send core kinds
// as protobuf and accept "application/vnd.kubernetes.protobuf,application/json".
const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// coreScheme knows the core/v1 kinds kiln serves and meta/v1's Status, so
// bodies decode into k8s.io/api types whatever their encoding.
var (
	coreScheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		if err := corev1.AddToScheme(s); err != nil {
			panic(err)
		}
		metav1.AddToGroupVersion(s, corev1.SchemeGroupVersion)
		return s
	}()
	coreCodecs = serializer.NewCodecFactory(coreScheme)
	coreProto  = protobuf.NewSerializer(coreScheme, coreScheme)
)

// readCoreObject decodes a JSON, YAML or protobuf body into into, whose
// kind is the default when a JSON body names none. A body of another kind
// is a 400, as in Kubernetes.
func readCoreObject(r *http.Request, into runtime.Object, resource string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("read body: %v", err))
	}
	if len(body) > maxBody {
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("request body larger than %d bytes", maxBody))
	}
	gvks, _, err := coreScheme.ObjectKinds(into)
	if err != nil {
		return err
	}
	want := gvks[0]
	var got *schema.GroupVersionKind
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == mediaProtobuf {
		_, got, err = coreProto.Decode(body, &want, into)
	} else {
		_, got, err = coreCodecs.UniversalDeserializer().Decode(body, &want, into)
	}
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format or does not decode as %s: %v", want.Kind, err))
	}
	if got != nil && *got != want {
		return apierrors.NewBadRequest(fmt.Sprintf("the kind of the provided object (%s) does not match the resource %q", got.Kind, resource))
	}
	return nil
}

// wantsProtobuf reports whether the client prefers protobuf over JSON. A
// client listing JSON first, or only JSON (kubectl's Table requests are
// JSON with parameters), gets JSON.
func wantsProtobuf(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return false
	}
	return goautoneg.Negotiate(accept, []string{mediaJSON, mediaProtobuf}) == mediaProtobuf
}

// writeCore answers obj, a core/v1 object or list, in the encoding the
// client prefers: protobuf when its Accept puts protobuf first, JSON
// otherwise.
func writeCore(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object) {
	gvks, _, err := coreScheme.ObjectKinds(obj)
	if err == nil {
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
		if r.Method == http.MethodGet && wantsTable(r) {
			if a, ok := coreResourceOf(gvks[0].Kind); ok {
				writeCoreTable(w, r, a, obj)
				return
			}
		}
	}
	if wantsProtobuf(r) {
		w.Header().Set("Content-Type", mediaProtobuf)
		w.WriteHeader(code)
		_ = coreProto.Encode(obj, w)
		return
	}
	writeJSON(w, code, obj)
}

// coreFail answers err: a Kubernetes StatusError as it is, anything else
// through the errdefs mapping with gr and name in its details.
func (s *server) coreFail(w http.ResponseWriter, r *http.Request, err error, gr schema.GroupResource, name string) {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		st.APIVersion, st.Kind = "v1", "Status"
		if st.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		} else {
			s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", st.Code, "error", err)
		}
		writeJSON(w, int(st.Code), st)
		return
	}
	s.fail(w, r, err, gr.Resource, name)
}

// deleted is the Status a core/v1 DELETE answers with when it returns no object.
func deleted(gr schema.GroupResource, name string) *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: name, Group: gr.Group, Kind: gr.Resource}}
}

// refuseWatch answers 405 to a watch on a core/v1 list kiln serves without
// one, instead of a list the client would take for a stream.
func (s *server) refuseWatch(w http.ResponseWriter, r *http.Request, gr schema.GroupResource) bool {
	if !isWatch(r) {
		return false
	}
	s.coreFail(w, r, apierrors.NewMethodNotSupported(gr, "watch"), gr, "")
	return true
}

// coreResourceOf is the descriptor of a core kind or of its list kind.
func coreResourceOf(kind string) (apiResource, bool) {
	kind = strings.TrimSuffix(kind, "List")
	for _, a := range coreAPIResources {
		if a.Kind == kind {
			return a, true
		}
	}
	return apiResource{}, false
}

// writeCoreTable answers a core get or list in the Table form, with the
// columns kubectl prints for the kind.
func writeCoreTable(w http.ResponseWriter, r *http.Request, a apiResource, obj runtime.Object) {
	if !apimeta.IsListType(obj) {
		writeTable(w, r, a, []any{obj}, "", "")
		return
	}
	items, err := apimeta.ExtractList(obj)
	if err != nil {
		writeError(w, err, a.Kind, "")
		return
	}
	objs := make([]any, len(items))
	for i, it := range items {
		objs[i] = it
	}
	var rv, cont string
	if l, err := apimeta.ListAccessor(obj); err == nil {
		rv, cont = l.GetResourceVersion(), l.GetContinue()
	}
	writeTable(w, r, a, objs, rv, cont)
}
