//go:build !race

package integration

// raceEnabled reports whether the tests run with -race; the gateway binary
// under test is then built with -race too.
const raceEnabled = false
