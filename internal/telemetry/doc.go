// Package telemetry holds svidgate's Prometheus metrics and its slog set-up.
//
// Every label has a bounded set of values: listener names and rule ids come
// from configuration, results and code classes are fixed words. Caller
// SPIFFE IDs are never a label.
package telemetry
