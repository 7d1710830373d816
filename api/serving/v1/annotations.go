package v1

// WithoutServerAnnotations returns m less the annotations the API server
// writes itself (creator, lastModifier), which users neither set nor
// compare: apply and export tell "unchanged" by the rest.
func WithoutServerAnnotations(m map[string]string) map[string]string {
	if m[CreatorAnnotation] == "" && m[LastModifierAnnotation] == "" {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != CreatorAnnotation && k != LastModifierAnnotation {
			out[k] = v
		}
	}
	return out
}
