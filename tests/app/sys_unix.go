//go:build linux || darwin

package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// reusePortControl sets SO_REUSEPORT on a socket before bind (net.ListenConfig.Control).
func reusePortControl(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
	}); err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt SO_REUSEPORT", serr)
}

// spawnChild starts the upgrade child with the listener as fd 3 and readyW as fd 4.
//
// It calls syscall.ForkExec directly instead of exec.Cmd with ExtraFiles on
// purpose: os.StartProcess calls (*os.File).Fd(), which switches the shared
// socket to blocking mode. The old process's accept() could then block in the
// kernel and never notice the listener being closed, so it would never exit.
func spawnChild(ln net.Listener, path string, argv, env []string, readyW *os.File) (*os.Process, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("cannot pass a %T to a child", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	readyFD := readyW.Fd() // a pipe: blocking mode is fine there
	var pid int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		pid, ferr = syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{0, 1, 2, fd, readyFD},
		})
	}); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return os.FindProcess(pid)
}
