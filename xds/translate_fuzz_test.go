package xds

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/cluster"
	"google.golang.org/protobuf/proto"
)

// FuzzTranslate feeds arbitrary Routes (as the registry stores them, JSON),
// instance endpoints, timeouts and modes to the translation every edge
// receives. It must never panic, must give the same resources for the
// same input (edges see a new version otherwise), and every route
// configuration must keep removing client-sent internal headers.
func FuzzTranslate(f *testing.F) {
	seed := func(r servingv1.Route, endpoint string, timeoutMS int64, activator bool, protocol string) {
		b, _ := json.Marshal(r)
		f.Add(b, endpoint, timeoutMS, activator, protocol)
	}
	seed(route("default", "hello", "http://hello.default.example.com", withTraffic("hello-00001", 100),
		withAddress("http://hello.default.svc.cluster.local")), "10.0.0.1:8012", 300000, false, "")
	seed(route("default", "split", "https://split.default.example.com", withTraffic("split-00001", 60), withTraffic("split-00002", 40),
		withTag("v2", "split-00002", 0, "http://v2-split.default.example.com"), withAnnotation(HTTPOptionAnnotation, "redirected")),
		"[::1]:8012", 1000, true, "redirected")
	seed(route("other", "private", "http://private.other.svc.cluster.local", withTraffic("private-00001", 100),
		withLabel(servingv1.VisibilityLabelKey, servingv1.VisibilityClusterLocal)), "not-an-ip", -5, false, "disabled")
	seed(route("default", "hidden", "http://hidden.default.example.com:8080", withTraffic("hidden-00001", 100),
		withAnnotation(DisableRouteAnnotation, "true")), "", 0, true, "enabled")
	f.Fuzz(func(t *testing.T, routeJSON []byte, endpoint string, timeoutMS int64, activator bool, protocol string) {
		var r servingv1.Route
		if err := json.Unmarshal(routeJSON, &r); err != nil {
			return
		}
		in := Input{Routes: []servingv1.Route{r}, Timeouts: map[string]time.Duration{}, ActivatorInPath: map[string]bool{},
			HTTPProtocol: protocol, Activators: []string{"10.0.0.9:8012"}}
		for i, tt := range r.Status.Traffic {
			c := ClusterName(r.Metadata.Namespace, tt.RevisionName)
			in.Timeouts[c] = time.Duration(timeoutMS) * time.Millisecond
			in.ActivatorInPath[c] = activator
			in.Instances = append(in.Instances, cluster.Instance{Instance: tt.RevisionName + "-" + string(rune('a'+i%26)),
				Namespace: r.Metadata.Namespace, Revision: tt.RevisionName, Ready: true, Endpoint: endpoint})
		}
		res := Translate(in, Options{})
		again := Translate(in, Options{})
		same := func(a, b []proto.Message) bool {
			return slices.EqualFunc(a, b, proto.Equal)
		}
		if !same(msgs(res.Listeners), msgs(again.Listeners)) || !same(msgs(res.Routes), msgs(again.Routes)) ||
			!same(msgs(res.Clusters), msgs(again.Clusters)) || !same(msgs(res.Endpoints), msgs(again.Endpoints)) {
			t.Fatalf("Translate is not deterministic for %s", routeJSON)
		}
		for _, rc := range res.Routes {
			if !rc.MostSpecificHeaderMutationsWins {
				t.Fatalf("route configuration %s lost most_specific_header_mutations_wins", rc.Name)
			}
			for _, h := range InternalHeaders {
				if !slices.Contains(rc.RequestHeadersToRemove, h) {
					t.Fatalf("route configuration %s does not remove %s", rc.Name, h)
				}
			}
		}
	})
}

func msgs[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
