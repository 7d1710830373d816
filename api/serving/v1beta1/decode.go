package v1beta1

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/kiln-serving/kiln/api/errdefs"
)

// IsDomainMapping reports whether a document's apiVersion and kind name a
// DomainMapping of a version this package reads.
func IsDomainMapping(apiVersion, kind string) bool {
	return kind == KindDomainMapping && (apiVersion == APIVersion || apiVersion == APIVersionAlpha)
}

// Decode parses one JSON or YAML DomainMapping strictly (unknown fields and
// duplicate keys are errors). Errors wrap errdefs.ErrInvalidArgument.
// Decode does not default or validate.
func Decode(data []byte) (*DomainMapping, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("malformed document: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, fmt.Errorf("malformed document: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, fmt.Errorf("missing field(s): apiVersion, kind: %w", errdefs.ErrInvalidArgument)
	}
	if !IsDomainMapping(tm.APIVersion, tm.Kind) {
		return nil, fmt.Errorf("unsupported apiVersion/kind %s/%s (want %s or %s DomainMapping): %w",
			tm.APIVersion, tm.Kind, APIVersion, APIVersionAlpha, errdefs.ErrInvalidArgument)
	}
	dm := &DomainMapping{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dm); err != nil {
		return nil, fmt.Errorf("decode DomainMapping: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return dm, nil
}
