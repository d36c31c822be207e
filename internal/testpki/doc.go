// Package testpki issues SPIFFE-shaped certificates for unit tests: a CA
// per trust domain and X509-SVIDs (ECDSA P-256) signed by it. Integration
// tests use a real SPIRE instead.
package testpki
