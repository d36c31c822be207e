// Package testredis runs a real redis-server for tests: a process on a free
// loopback port, without persistence, that a test can stop and start again
// on the same port to simulate an outage.
//
// It is test support only; no production code imports it. Tests that need
// Redis fail, never skip, when redis-server is not on PATH: the Redis code
// paths are not tested against anything else (.ci/run installs the Debian
// package redis-server).
//
// [Start] suits a single test: the server stops with the test.
// [StartProcess] suits a TestMain, which has no testing.TB: the caller stops
// the server. Both wait until the server answers PING.
//
// The [Server.Do] and [Server.DoLines] methods speak RESP over a fresh
// connection per command, so a test can look at the server independently of
// the client under test.
package testredis
