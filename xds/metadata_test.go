package xds

import (
	"testing"

	servingv1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
)

// Seed 4.5.2: a Service's labels and annotations reach the edge's route
// object with the ingress identity, on every listener the route is on.
func TestRouteMetadataReachesEveryRouteEntry(t *testing.T) {
	cert := selfSigned(t, "hello.example.org")
	in := Input{
		Routes: []servingv1.Route{
			route("default", "hello", "http://hello.default.example.com", withTraffic("hello-00001", 100),
				withAddress("http://hello.default.svc.cluster.local"),
				withLabel("team", "payments"), withAnnotation("example.com/owner", "alice"),
				withAnnotation(lastAppliedAnnotation, "{}"),
				withTag("blue", "hello-00001", 0, "http://blue-hello.default.example.com")),
			route("default", "secure", "https://secure.default.example.com", withTraffic("secure-00001", 100),
				withAnnotation(HTTPOptionAnnotation, "redirected"), withLabel("tier", "edge"),
				withAddress("http://secure.default.svc.cluster.local")),
		},
		DomainMappings: []v1beta1.DomainMapping{func() v1beta1.DomainMapping {
			dm := mapping("default", "hello.example.org", "hello", true, "hello-cert")
			dm.Metadata.Labels = map[string]string{"mapped": "yes"}
			return dm
		}()},
		Secrets: map[string]TLSSecret{"default/hello-cert": cert},
	}
	res := Translate(in, Options{})
	validateAll(t, res)

	type want struct {
		name, namespace string
		labels          map[string]string
		annotations     map[string]string
		absent          []string
	}
	hello := want{name: "hello", namespace: "default",
		labels:      map[string]string{"team": "payments", servingv1.RouteLabelKey: "hello", routeNamespaceLabelKey: "default"},
		annotations: map[string]string{"example.com/owner": "alice"}, absent: []string{lastAppliedAnnotation}}
	secure := want{name: "secure", namespace: "default",
		labels: map[string]string{"tier": "edge"}, annotations: map[string]string{HTTPOptionAnnotation: "redirected"}}
	dm := want{name: "hello.example.org", namespace: "default", labels: map[string]string{"mapped": "yes"}}
	byVHost := map[string]want{
		"default/hello": hello, "default/hello/tag/blue": hello, "default/secure": secure,
		"domainmapping/default/hello.example.org": dm,
	}

	seen := 0
	for _, rc := range res.Routes {
		for _, vh := range rc.VirtualHosts {
			w, ok := byVHost[vh.Name]
			if !ok {
				t.Errorf("%s: unexpected vhost %s", rc.Name, vh.Name)
				continue
			}
			for _, r := range vh.Routes {
				seen++
				md := r.GetMetadata().GetFilterMetadata()[RouteMetadataFilter]
				if md == nil {
					t.Errorf("%s %s route %s: no %s metadata", rc.Name, vh.Name, r.Name, RouteMetadataFilter)
					continue
				}
				f := md.GetFields()
				if f["ingressName"].GetStringValue() != w.name || f["ingressNamespace"].GetStringValue() != w.namespace {
					t.Errorf("%s %s: ingress %q/%q, want %s/%s", rc.Name, vh.Name,
						f["ingressNamespace"].GetStringValue(), f["ingressName"].GetStringValue(), w.namespace, w.name)
				}
				labels, ann := f["labels"].GetStructValue().GetFields(), f["annotations"].GetStructValue().GetFields()
				for k, v := range w.labels {
					if labels[k].GetStringValue() != v {
						t.Errorf("%s %s: label %s=%q, want %q", rc.Name, vh.Name, k, labels[k].GetStringValue(), v)
					}
				}
				for k, v := range w.annotations {
					if ann[k].GetStringValue() != v {
						t.Errorf("%s %s: annotation %s=%q, want %q", rc.Name, vh.Name, k, ann[k].GetStringValue(), v)
					}
				}
				for _, k := range w.absent {
					if _, ok := ann[k]; ok {
						t.Errorf("%s %s: annotation %s propagated", rc.Name, vh.Name, k)
					}
				}
			}
		}
	}
	// kiln-http (hello, tag, secure redirect, mapping), kiln-https (same 4)
	// and kiln-internal (hello, secure): two entries each (idempotent
	// methods, then the rest) but the redirect.
	if seen != 19 {
		t.Errorf("checked %d route entries, want 19", seen)
	}
}
