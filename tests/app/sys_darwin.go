//go:build darwin

package main

import (
	"net"
	"os"
	"syscall"
)

const soReusePort = syscall.SO_REUSEPORT

// monotonicUsec: MONOTONIC_USEC is for systemd, which macOS does not have.
func monotonicUsec() (uint64, bool) { return 0, false }

// inheritListener: see sys_linux.go for why Linux avoids net.FileListener.
func inheritListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	return net.FileListener(f)
}
