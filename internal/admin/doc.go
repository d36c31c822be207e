// Package admin serves svidgate's admin endpoints: /healthz (the process
// runs), /readyz (it holds a valid SVID that is not about to expire),
// /metrics (Prometheus) and /v1/status (identity, bundles and policies as
// JSON). The listener binds loopback unless configured otherwise.
package admin
