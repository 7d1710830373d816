package v1

import (
	"encoding/json"
	"strconv"
)

// intOrString is Kubernetes' IntOrString: a port number or a port name.
type intOrString struct {
	IsString bool
	IntVal   int32
	StrVal   string
}

// IntOrString is the exported name of intOrString for builders.
type IntOrString = intOrString

// FromInt returns an IntOrString holding i.
func FromInt(i int32) *IntOrString { return &IntOrString{IntVal: i} }

// MarshalJSON implements json.Marshaler.
func (v intOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *intOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString = true
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString = false
	return json.Unmarshal(b, &v.IntVal)
}

// String renders the value as it would appear in YAML.
func (v intOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}
