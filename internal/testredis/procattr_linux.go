package testredis

import "syscall"

// procAttr kills the server when the process that started it dies (a test
// binary killed by a timeout), so that no redis-server outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
