package v1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// Meta returns the object's metadata.
func (s *Service) Meta() *metav1.ObjectMeta { return &s.Metadata }

// Meta returns the object's metadata.
func (c *Configuration) Meta() *metav1.ObjectMeta { return &c.Metadata }

// Meta returns the object's metadata.
func (r *Revision) Meta() *metav1.ObjectMeta { return &r.Metadata }

// Meta returns the object's metadata.
func (r *Route) Meta() *metav1.ObjectMeta { return &r.Metadata }
