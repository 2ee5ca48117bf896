package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"syscall"
	"time"
)

// upgrade performs a tableflip-style binary upgrade on SIGHUP:
//
//  1. start a.execPath (argv[0] as given at start, resolved now) with the same
//     arguments, the listener as fd 3 and the write end of a pipe as fd 4;
//  2. the child serves on the shared socket, writes the PID file, sends
//     MAINPID=<child> + READY=1 to $NOTIFY_SOCKET, then writes one byte to fd 4;
//  3. on that byte upgrade returns the child's PID and the caller drains.
//
// If the child exits, or is not ready within a.upgradeTimeout, or abort is
// closed, the child is stopped and an error returned: this process keeps
// serving and the PID file still names it.
func (a *app) upgrade(abort <-chan struct{}) (int, error) {
	path := a.execPath
	if path == "" {
		return 0, errors.New("cannot tell which binary to start")
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("new binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	proc, err := spawnChild(a.ln, path, append([]string{path}, a.args...), childEnv(), w)
	w.Close() // the child holds the only write end now: EOF means it died
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", path, err)
	}
	log.Printf("upgrade: started %s as pid %d, waiting up to %s for it to be ready", path, proc.Pid, a.upgradeTimeout)

	ready := make(chan bool, 1)
	go func() {
		b := make([]byte, 1)
		n, _ := r.Read(b)
		ready <- n == 1
	}()
	exited := make(chan string, 1)
	go func() {
		st, err := proc.Wait()
		if err != nil {
			exited <- err.Error()
			return
		}
		exited <- st.String()
	}()

	timer := time.NewTimer(a.upgradeTimeout)
	defer timer.Stop()
	var why error
	select {
	case ok := <-ready:
		if ok {
			return proc.Pid, nil
		}
		why = fmt.Errorf("new process %d exited before it was ready", proc.Pid)
	case st := <-exited:
		// Already reaped: stopChild would wait for a second exit status that never comes.
		return 0, fmt.Errorf("new process %d exited before it was ready (%s)", proc.Pid, st)
	case <-timer.C:
		why = fmt.Errorf("new process %d not ready within %s", proc.Pid, a.upgradeTimeout)
	case <-abort:
		why = fmt.Errorf("aborted, stopping new process %d", proc.Pid)
	}
	a.stopChild(proc, exited)
	return 0, why
}

// stopChild asks a failed child to stop (SIGTERM: it drains what it accepted
// from the shared socket), and kills it if it has not exited within the drain
// timeout. It returns once the child is reaped.
func (a *app) stopChild(proc *os.Process, exited <-chan string) {
	_ = proc.Signal(syscall.SIGTERM)
	t := time.NewTimer(a.drainTimeout)
	defer t.Stop()
	select {
	case st := <-exited:
		log.Printf("upgrade: new process %d stopped (%s)", proc.Pid, st)
	case <-t.C:
		_ = proc.Kill()
		log.Printf("upgrade: new process %d killed (%s)", proc.Pid, <-exited)
	}
}

// childEnv is this process's environment with the upgrade-child markers set.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", envInheritFD, envReadyFD:
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LISTEN_FDS=1", envInheritFD+"=3", envReadyFD+"=4")
}
