// Package integration holds svidgate's end-to-end tests. They run with plain
// `go test` (make test) and drive real processes: TestMain builds the svidgate
// binary and the sample services of examples/services and starts a SPIRE
// server and agent from bin/spire (make spire builds them) and the sample
// backends. The gateways come in topologies (topology_test.go) that each
// test declares and the first declaration starts: one registration entry
// per gateway identity (each gateway runs from its own copy of the binary,
// selected by unix:path), so that `go test -run TestX` starts only what
// TestX needs. Test clients present X509-SVIDs minted with
// `spire-server x509 mint`.
//
// Every process is started in its own process group and killed when the tests
// end; every wait is bounded. Set SVIDGATE_IT_KEEP=1 to keep the working
// directory (configs, logs, audit files) after a successful run; it is always
// kept after a failure.
package integration
