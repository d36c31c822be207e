// Package fakeworkload is a SPIFFE Workload API server for unit tests,
// built on go-spiffe's public proto/spiffe/workload package and listening
// on a unix socket in the test's temporary directory. It streams JWT
// bundles, which a test replaces at will, and mints JWT-SVIDs with test
// authorities; it can be stopped and started again on the same socket to
// play an agent outage. Like SPIRE's agent, it refuses calls without the
// "workload.spiffe.io: true" metadata. Integration tests use a real SPIRE
// instead.
package fakeworkload
