// Package route implements `kiln route` (list, describe). Routes are
// written by the controller for Services (or directly with kiln apply).
package route
