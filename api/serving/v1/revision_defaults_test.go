package v1

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
)

// The stored spec shows Knative's webhook defaults (what `kubectl get ksvc
// -o yaml` and `kn service export` print), and defaulting twice changes
// nothing, so re-applying a defaulted object makes no new generation.
func TestRevisionSpecDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{{
		name: "one container",
		in:   `{"containers":[{"image":"img"}]}`,
		want: `{"containers":[{"name":"user-container","image":"img","resources":{},` +
			`"readinessProbe":{"tcpSocket":{"port":0},"successThreshold":1}}],` +
			`"enableServiceLinks":false,"containerConcurrency":0,"timeoutSeconds":300}`,
	}, {
		name: "a port gets its protocol; a user's values stay",
		in: `{"containers":[{"name":"app","image":"img","ports":[{"containerPort":9000}],` +
			`"readinessProbe":{"httpGet":{"path":"/healthz"},"periodSeconds":5}}],` +
			`"enableServiceLinks":true,"containerConcurrency":10,"timeoutSeconds":30}`,
		want: `{"containers":[{"name":"app","image":"img","ports":[{"containerPort":9000,"protocol":"TCP"}],"resources":{},` +
			`"readinessProbe":{"httpGet":{"path":"/healthz","port":0},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3}}],` +
			`"enableServiceLinks":true,"containerConcurrency":10,"timeoutSeconds":30}`,
	}, {
		name: "timeoutSeconds 0 is the default",
		in:   `{"containers":[{"image":"img"}],"timeoutSeconds":0}`,
		want: `{"containers":[{"name":"user-container","image":"img","resources":{},` +
			`"readinessProbe":{"tcpSocket":{"port":0},"successThreshold":1}}],` +
			`"enableServiceLinks":false,"containerConcurrency":0,"timeoutSeconds":300}`,
	}, {
		name: "only the serving container of several is probed",
		in:   `{"containers":[{"image":"img","ports":[{"containerPort":8080}]},{"image":"side"}]}`,
		want: `{"containers":[{"name":"user-container-0","image":"img","ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{},` +
			`"readinessProbe":{"tcpSocket":{"port":0},"successThreshold":1}},` +
			`{"name":"user-container-1","image":"side","resources":{}}],` +
			`"enableServiceLinks":false,"containerConcurrency":0,"timeoutSeconds":300}`,
	}, {
		name: "mounts of secret, configMap and projected volumes are read-only, of emptyDir as the user says",
		in: `{"containers":[{"image":"img","volumeMounts":[{"name":"cm","mountPath":"/cm"},{"name":"p","mountPath":"/p/t","subPath":"t"},{"name":"scratch","mountPath":"/s"}]}],` +
			`"volumes":[{"name":"cm","configMap":{"name":"c"}},{"name":"p","projected":{"sources":[{"serviceAccountToken":{"path":"t"}}]}},{"name":"scratch","emptyDir":{}}]}`,
		want: `{"containers":[{"name":"user-container","image":"img","resources":{},` +
			`"volumeMounts":[{"name":"cm","mountPath":"/cm","readOnly":true},{"name":"p","mountPath":"/p/t","readOnly":true,"subPath":"t"},{"name":"scratch","mountPath":"/s"}],` +
			`"readinessProbe":{"tcpSocket":{"port":0},"successThreshold":1}}],` +
			`"volumes":[{"name":"cm","configMap":{"name":"c"}},{"name":"p","projected":{"sources":[{"serviceAccountToken":{"path":"t"}}]}},{"name":"scratch","emptyDir":{}}],` +
			`"enableServiceLinks":false,"containerConcurrency":0,"timeoutSeconds":300}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var s RevisionSpec
			if err := json.Unmarshal([]byte(tc.in), &s); err != nil {
				t.Fatal(err)
			}
			s.SetDefaults(context.Background())
			got, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("defaulted\n got %s\nwant %s", got, tc.want)
			}
			again := s
			if err := json.Unmarshal(got, &again); err != nil {
				t.Fatal(err)
			}
			again.SetDefaults(context.Background())
			if !reflect.DeepEqual(again, s) {
				t.Errorf("defaulting the defaulted spec changed it:\n%+v\n%+v", again, s)
			}
			if fe := (&Configuration{Metadata: svc("x").Metadata, Spec: ConfigurationSpec{Template: RevisionTemplateSpec{Spec: s}}}).Validate(context.Background()); fe != nil {
				t.Errorf("the defaulted spec does not validate: %v", fe)
			}
		})
	}
}
