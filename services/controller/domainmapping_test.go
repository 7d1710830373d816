package controller

import (
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/api/serving/v1beta1"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func newDM(ns, name, svc string) *v1beta1.DomainMapping {
	return &v1beta1.DomainMapping{
		Metadata: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:     v1beta1.DomainMappingSpec{Ref: v1beta1.KReference{Kind: v1.KindService, Name: svc, Namespace: ns, APIVersion: v1.APIVersion}},
	}
}

// TestDomainMappingClaimAndReadiness: a mapping becomes Ready with its
// Service; a second namespace's mapping of the same domain is refused with
// DomainAlreadyClaimed until the first is deleted.
func TestDomainMappingClaimAndReadiness(t *testing.T) {
	ctx, st, reg := setup(t)
	first := newDM("default", "hello.example.org", "hello")
	first.Spec.TLS = &v1beta1.SecretTLS{SecretName: "cert"}
	if _, err := reg.DomainMappings().Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	condOf := func(ns, name, typ string) *metav1.Condition {
		got, err := reg.DomainMappings().Get(ctx, ns, name)
		if err != nil {
			return nil
		}
		return got.Status.GetCondition(typ)
	}
	testenv.Eventually(t, "unresolved ref", 0, func() bool {
		c := condOf("default", "hello.example.org", v1beta1.ConditionReferenceResolved)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "ResolveFailed"
	})

	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
	if _, err := reg.Services().Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "revision", 0, func() bool { _, err := reg.Revisions().Get(ctx, "default", "hello-00001"); return err == nil })
	readyInstance(t, ctx, st, "hello-00001")
	testenv.Eventually(t, "mapping ready", 0, func() bool {
		got, err := reg.DomainMappings().Get(ctx, "default", "hello.example.org")
		return err == nil && got.IsReady()
	})
	got, _ := reg.DomainMappings().Get(ctx, "default", "hello.example.org")
	if got.Status.URL != "https://hello.example.org" {
		t.Fatalf("url = %q", got.Status.URL)
	}
	if c := got.Status.GetCondition(v1beta1.ConditionCertificateProvisioned); c.Reason != "CertificateExternallyProvided" {
		t.Fatalf("certificate condition: %+v", c)
	}

	second := newDM("other", "hello.example.org", "hello")
	if _, err := reg.DomainMappings().Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "second refused", 0, func() bool {
		c := condOf("other", "hello.example.org", v1beta1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "DomainAlreadyClaimed"
	})

	if err := reg.DomainMappings().Delete(ctx, "default", "hello.example.org"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "second takes the claim", 0, func() bool {
		c := condOf("other", "hello.example.org", v1beta1.ConditionDomainClaimed)
		return c != nil && c.Status == metav1.ConditionTrue
	})
}
