// Package integration holds svidgate's end-to-end tests. They run with plain
// `go test` (make test) and drive real processes: TestMain builds the svidgate
// binary and the sample services of examples/services, starts a SPIRE server
// and agents from bin/spire (make spire builds them), registers one entry per
// gateway identity (each gateway runs from its own copy of the binary,
// selected by unix:path) and mints X509-SVIDs for the test clients with
// `spire-server x509 mint`.
//
// Every process is started in its own process group and killed when the tests
// end; every wait is bounded. Set SVIDGATE_IT_KEEP=1 to keep the working
// directory (configs, logs, audit files) after a successful run; it is always
// kept after a failure.
package integration
