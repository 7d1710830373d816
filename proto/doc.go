// Package proto holds kiln's gRPC contracts between processes and the code
// generated from them (`make proto` regenerates it; the generated files are
// committed so builds need no protoc).
//
//   - kiln/autoscaler/v1: metrics from agents and activators to the
//     autoscaler, and the activator's cold-start poke.
package proto
