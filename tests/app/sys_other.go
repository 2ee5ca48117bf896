//go:build !linux && !darwin

package main

import (
	"errors"
	"net"
	"os"
	"syscall"
)

var errUnsupported = errors.New("not supported on this operating system")

func reusePortControl(network, address string, c syscall.RawConn) error {
	return errUnsupported
}

func monotonicUsec() (uint64, bool) { return 0, false }

func inheritListener(fd int) (net.Listener, error) { return nil, errUnsupported }

func spawnChild(ln net.Listener, path string, argv, env []string, readyW *os.File) (*os.Process, error) {
	return nil, errUnsupported
}
