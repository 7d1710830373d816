package v1

import "time"

// TypeMeta identifies the schema of an object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// ObjectMeta is the metadata every stored object carries.
//
// Name and Namespace are required and immutable. UID, Generation,
// ResourceVersion and CreationTimestamp are set by the server; a client
// sends ResourceVersion back on update to get compare-and-swap semantics.
type ObjectMeta struct {
	Name string `json:"name,omitempty"`
	// GenerateName, when Name is empty on create, asks the server for a
	// unique name with this prefix.
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp *Time             `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *Time             `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
	Finalizers        []string          `json:"finalizers,omitempty"`
	// ManagedFields records which field manager set which fields, as
	// Kubernetes' server-side apply keeps it. Entries are stored as sent by
	// the field manager (metav1.ManagedFieldsEntry's JSON form).
	ManagedFields []ManagedFieldsEntry `json:"managedFields,omitempty"`
}

// ManagedFieldsEntry is one field manager's set of owned fields, in
// Kubernetes' metav1.ManagedFieldsEntry JSON shape.
type ManagedFieldsEntry struct {
	Manager     string `json:"manager,omitempty"`
	Operation   string `json:"operation,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Time        *Time  `json:"time,omitempty"`
	FieldsType  string `json:"fieldsType,omitempty"`
	FieldsV1    any    `json:"fieldsV1,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

// OwnerReference points from a child object to the object that created it.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	Controller         *bool  `json:"controller,omitempty"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// Time is a timestamp serialized as RFC 3339 with second precision, like
// Kubernetes' metav1.Time.
type Time struct{ time.Time }

// NewTime wraps t, truncated to seconds.
func NewTime(t time.Time) *Time { return &Time{t.UTC().Truncate(time.Second)} }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" || s == `""` {
		t.Time = time.Time{}
		return nil
	}
	if len(s) < 2 || s[0] != '"' {
		return &time.ParseError{Layout: time.RFC3339, Value: s}
	}
	p, err := time.Parse(time.RFC3339, s[1:len(s)-1])
	if err != nil {
		return err
	}
	t.Time = p
	return nil
}

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one observation of an aspect of an object's state, in
// Knative's shape.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Severity           string          `json:"severity,omitempty"`
	LastTransitionTime *Time           `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Status is the part of status every Knative object carries.
type Status struct {
	ObservedGeneration int64             `json:"observedGeneration,omitempty"`
	Conditions         []Condition       `json:"conditions,omitempty"`
	Annotations        map[string]string `json:"annotations,omitempty"`
}

// GetCondition returns the condition of type t, or nil.
func (s *Status) GetCondition(t string) *Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// SetCondition sets a condition, keeping LastTransitionTime when the status
// does not change. now is passed in so callers stay testable.
func (s *Status) SetCondition(c Condition, now time.Time) {
	for i := range s.Conditions {
		if s.Conditions[i].Type != c.Type {
			continue
		}
		old := s.Conditions[i]
		if old.Status == c.Status && old.LastTransitionTime != nil {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = NewTime(now)
		}
		s.Conditions[i] = c
		return
	}
	c.LastTransitionTime = NewTime(now)
	s.Conditions = append(s.Conditions, c)
}

// IsTrue reports whether condition t is True.
func (s *Status) IsTrue(t string) bool {
	c := s.GetCondition(t)
	return c != nil && c.Status == ConditionTrue
}

// Addressable is status.address.
type Addressable struct {
	URL string `json:"url,omitempty"`
}
