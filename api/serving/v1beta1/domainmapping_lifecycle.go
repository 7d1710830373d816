package v1beta1

import (
	"fmt"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
)

// dependents are the conditions Ready summarizes (Knative's living
// condition set for DomainMapping).
var dependents = []string{ConditionDomainClaimed, ConditionReferenceResolved, ConditionIngressReady, ConditionCertificateProvisioned}

// Messages Knative uses.
const (
	TLSCertificateProvidedExternally = "TLS certificate was provided externally"
	AutoTLSNotEnabledMessage         = "autoTLS is not enabled"
)

// IsReady reports whether the current generation is observed and Ready.
func (dm *DomainMapping) IsReady() bool {
	return dm.Status.ObservedGeneration == dm.Metadata.Generation && dm.Status.IsTrue(ConditionReady)
}

// InitializeConditions sets Ready and every dependent to Unknown where absent.
func (s *DomainMappingStatus) InitializeConditions(now time.Time) {
	for _, t := range append([]string{ConditionReady}, dependents...) {
		if s.GetCondition(t) == nil {
			s.SetCondition(metav1.Condition{Type: t, Status: metav1.ConditionUnknown}, now)
		}
	}
}

// mark sets dependent t and recomputes Ready: False if any dependent is
// False (with the first False one's reason), Unknown if any is Unknown,
// True when all are True.
func (s *DomainMappingStatus) mark(t string, st metav1.ConditionStatus, reason, msg string, now time.Time) {
	s.SetCondition(metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg}, now)
	var unknown, failed *metav1.Condition
	for _, d := range dependents {
		c := s.GetCondition(d)
		switch {
		case c == nil:
			if unknown == nil {
				unknown = &metav1.Condition{}
			}
		case c.Status == metav1.ConditionFalse:
			if failed == nil {
				failed = c
			}
		case c.Status == metav1.ConditionUnknown:
			if unknown == nil {
				unknown = c
			}
		}
	}
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue}
	switch {
	case failed != nil:
		ready = metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: failed.Reason, Message: failed.Message}
	case unknown != nil:
		ready = metav1.Condition{Type: ConditionReady, Status: metav1.ConditionUnknown, Reason: unknown.Reason, Message: unknown.Message}
	}
	s.SetCondition(ready, now)
}

// MarkDomainClaimed: this mapping holds the cluster-wide claim on its name.
func (s *DomainMappingStatus) MarkDomainClaimed(now time.Time) {
	s.mark(ConditionDomainClaimed, metav1.ConditionTrue, "", "", now)
}

// MarkDomainClaimNotOwned: another namespace's mapping claimed the name first.
func (s *DomainMappingStatus) MarkDomainClaimNotOwned(now time.Time) {
	s.mark(ConditionDomainClaimed, metav1.ConditionFalse, "DomainAlreadyClaimed",
		"The domain name is already in use by another DomainMapping", now)
}

// MarkDomainClaimFailed: the claim could not be written.
func (s *DomainMappingStatus) MarkDomainClaimFailed(reason string, now time.Time) {
	s.mark(ConditionDomainClaimed, metav1.ConditionFalse, "DomainClaimFailed", reason, now)
}

// MarkReferenceResolved: the ref names an existing Addressable with a URL.
func (s *DomainMappingStatus) MarkReferenceResolved(now time.Time) {
	s.mark(ConditionReferenceResolved, metav1.ConditionTrue, "", "", now)
}

// MarkReferenceNotResolved: the ref could not be resolved (missing target,
// no address yet).
func (s *DomainMappingStatus) MarkReferenceNotResolved(msg string, now time.Time) {
	s.mark(ConditionReferenceResolved, metav1.ConditionFalse, "ResolveFailed", msg, now)
}

// MarkCertificateNotRequired: spec.tls names a user-provided secret.
func (s *DomainMappingStatus) MarkCertificateNotRequired(now time.Time) {
	s.mark(ConditionCertificateProvisioned, metav1.ConditionTrue, "CertificateExternallyProvided", TLSCertificateProvidedExternally, now)
}

// MarkTLSNotEnabled: plain HTTP; kiln has no auto-TLS.
func (s *DomainMappingStatus) MarkTLSNotEnabled(now time.Time) {
	s.mark(ConditionCertificateProvisioned, metav1.ConditionTrue, "TLSNotEnabled", AutoTLSNotEnabledMessage, now)
}

// MarkCertificateNotReady: the named secret is missing or unusable.
func (s *DomainMappingStatus) MarkCertificateNotReady(secret, why string, now time.Time) {
	s.mark(ConditionCertificateProvisioned, metav1.ConditionUnknown, "CertificateNotReady",
		fmt.Sprintf("Certificate %s is not ready: %s", secret, why), now)
}

// MarkIngressNotConfigured: the edge has not been told yet.
func (s *DomainMappingStatus) MarkIngressNotConfigured(now time.Time) {
	s.mark(ConditionIngressReady, metav1.ConditionUnknown, "IngressNotConfigured", "Ingress has not yet been reconciled.", now)
}

// MarkIngressNotReady: the target does not serve traffic yet.
func (s *DomainMappingStatus) MarkIngressNotReady(reason, msg string, now time.Time) {
	s.mark(ConditionIngressReady, metav1.ConditionUnknown, reason, msg, now)
}

// MarkIngressReady: the edge routes the domain to the target.
func (s *DomainMappingStatus) MarkIngressReady(now time.Time) {
	s.mark(ConditionIngressReady, metav1.ConditionTrue, "", "", now)
}
