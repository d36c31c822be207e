// Package config reads gateway.toml, svidgate's own configuration:
// listeners, identity, audit, logging and the admin listener.
//
// Decoding is strict. Unknown keys, wrong types and malformed values are
// errors that name file:line:col and what was expected; values with rules of
// their own (durations, SPIFFE IDs, trust domains, upstream URLs) are typed
// leaves that check themselves while decoding, so that their errors carry
// positions. Validate then checks what spans several keys. Docs:
// docs/CONFIG.md.
package config
