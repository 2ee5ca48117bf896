package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// sdNotify sends one datagram to $NOTIFY_SOCKET, like sd_notify(3). It does
// nothing when the variable is unset. A name starting with '@' is an abstract
// socket: package syscall turns the leading '@' into the NUL byte on Linux.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("NOTIFY_SOCKET=%q: want an absolute path or an @abstract name", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// writePIDFile writes pid to path atomically: a temp file in the same
// directory, fsync, rename over path, fsync the directory. Readers see the old
// PID or the new one, never a partial file.
func writePIDFile(path string, pid int) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := fmt.Fprintf(tmp, "%d\n", pid); err != nil {
		tmp.Close()
		return fmt.Errorf("pid file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("pid file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pid file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not supported everywhere
		d.Close()
	}
	return nil
}

// readPIDFile returns the PID stored in path.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(bytes.TrimSpace(b)))
}

// removePIDFileIfOurs removes path on a normal stop, but only while it still
// names this process: after an upgrade it belongs to the new process.
func removePIDFileIfOurs(path string, pid int) {
	if path == "" {
		return
	}
	if got, err := readPIDFile(path); err == nil && got == pid {
		os.Remove(path)
	}
}
