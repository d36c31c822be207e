// Package gateway owns the life of one svidgate process: Provision, then
// Start, Serve and Stop. `svidgate validate` and `svidgate run` go through
// the same Provision, which checks everything that needs no network and
// writes nothing (the config, every policy, certificate and key files,
// password files, the audit trail's directory), so that validate finds
// every error run would find before serving, without a Workload API.
// Start opens what is live: the audit trail, the Workload API watches, the
// rate-limit backend, and every listener and the admin listener. Listeners
// are listener.Listener values; the gateway does not know their framing.
package gateway
