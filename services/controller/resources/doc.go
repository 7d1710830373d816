// Package resources holds the pure builders the controller uses to compute
// desired child objects: the Configuration and Route of a Service, the
// Revision of a Configuration, a Route's resolved traffic and URLs, and the
// core/v1 Service a Route keeps. No I/O and no clock reads: callers pass
// everything in.
package resources
