package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
)

// Environment of an upgrade child (see upgrade.go). LISTEN_PID cannot name a
// child before it exists, so the child recognises itself by HOTSWAP_INHERIT_FD.
const (
	envInheritFD = "HOTSWAP_INHERIT_FD" // fd of the inherited listener (3)
	envReadyFD   = "HOTSWAP_READY_FD"   // write end of the readiness pipe (4)
)

// getListener returns, in order of preference: the listener inherited from an
// upgrading parent, the one passed by systemd socket activation, or a new one
// bound to addr. It also says where the listener came from.
func getListener(addr string, reuseport bool) (net.Listener, string, error) {
	inherit := os.Getenv(envInheritFD)
	listenPID := os.Getenv("LISTEN_PID")
	listenFDs := os.Getenv("LISTEN_FDS")
	// Like sd_listen_fds(1): never let these leak to processes we start.
	for _, k := range []string{envInheritFD, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}

	if inherit != "" {
		fd, err := strconv.Atoi(inherit)
		if err != nil || fd < 3 {
			return nil, "", fmt.Errorf("%s=%q: want a file descriptor number >= 3", envInheritFD, inherit)
		}
		ln, err := inheritListener(fd)
		if err != nil {
			return nil, "", fmt.Errorf("listener fd %d from the parent: %w", fd, err)
		}
		return ln, fmt.Sprintf("fd %d inherited from the upgrading parent", fd), nil
	}

	if pid, _ := strconv.Atoi(listenPID); pid == os.Getpid() {
		if n, _ := strconv.Atoi(listenFDs); n >= 1 {
			ln, err := inheritListener(3)
			if err != nil {
				return nil, "", fmt.Errorf("systemd socket fd 3: %w", err)
			}
			return ln, fmt.Sprintf("fd 3 from systemd, LISTEN_FDS=%d", n), nil
		}
	}

	lc := net.ListenConfig{}
	if reuseport {
		lc.Control = reusePortControl
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	if reuseport {
		return ln, "bound with SO_REUSEPORT", nil
	}
	return ln, "bound", nil
}

// takeReadyPipe returns the readiness pipe of an upgrade child, or nil.
func takeReadyPipe() (*os.File, error) {
	v := os.Getenv(envReadyFD)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: want a file descriptor number >= 3", envReadyFD, v)
	}
	return os.NewFile(uintptr(fd), "ready-pipe"), nil
}
