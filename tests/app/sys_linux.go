//go:build linux

package main

import (
	"errors"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// soReusePort is SO_REUSEPORT on Linux amd64/arm64 (package syscall lacks it on amd64).
const soReusePort = 0xf

// monotonicUsec reads CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC=.
func monotonicUsec() (uint64, bool) {
	const clockMonotonic = 1
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3, true
}

// inheritListener wraps an inherited listening socket.
//
// net.FileListener is not used on purpose: it calls (*os.File).Fd(), which
// puts the socket, shared with the old process during an upgrade, into
// blocking mode for a moment; an accept() the old process starts in that
// moment blocks in the kernel and would keep it from exiting. fdListener
// accepts through the runtime poller without ever touching the socket's mode.
func inheritListener(fd int) (net.Listener, error) {
	if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil {
		return nil, os.NewSyscallError("getsockopt", err)
	} else if v == 0 {
		return nil, errors.New("not a listening socket")
	}
	if err := syscall.SetNonblock(fd, true); err != nil { // systemd passes it blocking
		return nil, os.NewSyscallError("setnonblock", err)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &fdListener{f: f, rc: rc}
	if sa, err := syscall.Getsockname(fd); err == nil {
		l.addr = sockaddrToAddr(sa)
	}
	return l, nil
}

type fdListener struct {
	f    *os.File
	rc   syscall.RawConn
	addr net.Addr
}

func (l *fdListener) Accept() (net.Conn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if aerr != syscall.EINTR && aerr != syscall.ECONNABORTED {
				return aerr != syscall.EAGAIN // false: wait in the poller, then retry
			}
		}
	})
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	if aerr != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: os.NewSyscallError("accept4", aerr)}
	}
	// The accepted socket is ours alone: net.FileConn may do as it likes with it.
	cf := os.NewFile(uintptr(nfd), "conn")
	defer cf.Close()
	return net.FileConn(cf)
}

func (l *fdListener) Close() error                          { return l.f.Close() }
func (l *fdListener) Addr() net.Addr                        { return l.addr }
func (l *fdListener) SyscallConn() (syscall.RawConn, error) { return l.rc, nil }

func sockaddrToAddr(sa syscall.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}
