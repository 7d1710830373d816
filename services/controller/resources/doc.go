// Package resources holds the pure builders the controller uses to compute
// desired child objects: the Configuration and Route of a Service, the
// Revision of a Configuration, and a Route's resolved traffic and URLs. No
// I/O and no clock reads: callers pass everything in.
package resources
