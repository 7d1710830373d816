package v1beta1

import (
	"context"
	"reflect"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

func dm(name string, mods ...func(*DomainMapping)) *DomainMapping {
	d := &DomainMapping{
		TypeMeta: metav1.TypeMeta{APIVersion: APIVersionAlpha, Kind: KindDomainMapping},
		Metadata: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:     DomainMappingSpec{Ref: KReference{Kind: "Service", Name: "hello", APIVersion: v1.APIVersion}},
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		dm    *DomainMapping
		paths []string
	}{
		{"valid", dm("example.com"), nil},
		{"seed's single-label name", dm("example-domain"), nil},
		{"route ref", dm("a.example.com", func(d *DomainMapping) { d.Spec.Ref.Kind = "Route" }), nil},
		{"tls", dm("a.example.com", func(d *DomainMapping) { d.Spec.TLS = &SecretTLS{SecretName: "cert"} }), nil},
		{"uppercase name", dm("Example.com"), []string{"metadata.name"}},
		{"cluster-local name", dm("hello.default.svc.cluster.local"), []string{"metadata.name"}},
		{"missing ref", dm("a.example.com", func(d *DomainMapping) { d.Spec.Ref = KReference{} }),
			[]string{"spec.ref.apiVersion", "spec.ref.kind", "spec.ref.name"}},
		{"other namespace", dm("a.example.com", func(d *DomainMapping) { d.Spec.Ref.Namespace = "other" }), []string{"spec.ref.namespace"}},
		{"unsupported kind", dm("a.example.com", func(d *DomainMapping) { d.Spec.Ref.Kind = "Pod" }), []string{"spec.ref.kind"}},
		{"empty secret name", dm("a.example.com", func(d *DomainMapping) { d.Spec.TLS = &SecretTLS{} }), []string{"spec.tls.secretName"}},
		{"all at once", dm("-bad", func(d *DomainMapping) {
			d.Spec.Ref.Name = ""
			d.Spec.TLS = &SecretTLS{SecretName: "Bad_Name"}
		}), []string{"metadata.name", "spec.ref.name", "spec.tls.secretName"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.dm.SetDefaults(context.Background())
			var got []string
			for _, c := range tc.dm.Validate(context.Background()).Causes() {
				got = append(got, c.Field)
			}
			if !reflect.DeepEqual(got, tc.paths) {
				t.Fatalf("paths = %v, want %v (%v)", got, tc.paths, tc.dm.Validate(context.Background()))
			}
		})
	}
}

func TestDefaultsAndDecode(t *testing.T) {
	doc := []byte(`apiVersion: serving.knative.dev/v1alpha1
kind: DomainMapping
metadata:
  name: example-domain
  namespace: default
spec:
  ref:
    name: example-service
    kind: Service
    apiVersion: serving.knative.dev/v1
`)
	d, err := Decode(doc)
	if err != nil {
		t.Fatal(err)
	}
	d.SetDefaults(context.Background())
	if d.APIVersion != APIVersion || d.Spec.Ref.Namespace != "default" {
		t.Fatalf("defaults: %+v", d)
	}
	if _, err := Decode([]byte("apiVersion: serving.knative.dev/v1beta1\nkind: DomainMapping\nmetadata: {name: x}\nspec: {reff: {}}\n")); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestReadyFollowsDependents(t *testing.T) {
	var st DomainMappingStatus
	now := metav1.NewTime(metav1.Time{}.Time).Time
	st.InitializeConditions(now)
	st.MarkDomainClaimed(now)
	st.MarkReferenceResolved(now)
	st.MarkTLSNotEnabled(now)
	if c := st.GetCondition(ConditionReady); c.Status != metav1.ConditionUnknown {
		t.Fatalf("ready before ingress: %+v", c)
	}
	st.MarkIngressReady(now)
	if !st.IsTrue(ConditionReady) {
		t.Fatalf("not ready: %+v", st.Conditions)
	}
	st.MarkDomainClaimNotOwned(now)
	if c := st.GetCondition(ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != "DomainAlreadyClaimed" {
		t.Fatalf("ready after losing the claim: %+v", c)
	}
}
