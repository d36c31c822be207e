// Package cli implements svidgate's subcommands. Run returns the process
// exit code: 0 on success, 1 when the work failed or the input is invalid,
// 2 on a usage error.
package cli
