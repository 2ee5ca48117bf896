//go:build linux

package main

// Tests that build the real binary with build.sh and run it: faults, systemd
// socket activation, readiness, SIGTERM draining and SIGHUP upgrades. Every
// request goes to 127.0.0.1. The test process makes itself a child subreaper so
// that upgrade children, orphaned when the old process exits, become its own
// children and can be stopped and reaped.

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var buildDir string

func TestMain(m *testing.M) {
	flag.Parse()
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER):", e)
		os.Exit(1)
	}
	var err error
	if buildDir, err = os.MkdirTemp("", "hotswapdemo-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	builds  = map[string]string{}
)

// binary builds (once) the service with build.sh and returns its path.
func binary(t *testing.T, version, fault string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	key := version + "-" + fault
	if p, ok := builds[key]; ok {
		return p
	}
	out := filepath.Join(buildDir, key, "app")
	cmd := exec.Command("bash", "build.sh", version, out, fault)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh %s %s: %v\n%s", version, fault, err, b)
	}
	builds[key] = out
	return out
}

// proc is a started binary, logging to a file (not a pipe: a pipe would be
// inherited by upgrade children and keep cmd.Wait waiting for them).
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // from cmd.Wait, valid after done
}

func start(t *testing.T, path string, args, env []string, extra ...*os.File) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "app.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = extra
	for _, kv := range os.Environ() {
		k := strings.SplitN(kv, "=", 2)[0]
		if !strings.HasPrefix(k, "HOTSWAP_") && !strings.HasPrefix(k, "LISTEN_") && k != "NOTIFY_SOCKET" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", path, b)
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exitCode waits for the process and returns its exit status.
func (p *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("pid %d still running after %s", p.pid(), timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// adopt registers a process that is not a direct child (an upgrade child) to
// be killed and reaped at the end of the test. Once its parent is gone it is
// our child (subreaper) and waitPID can reap it.
func adopt(t *testing.T, pid int) {
	t.Cleanup(func() {
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
			waitPID(pid, 5*time.Second)
		}
	})
}

// waitPID reaps pid once it has exited and was reparented to us. It returns
// the wait status, or ok=false on timeout or when someone else reaped it.
func waitPID(pid int, timeout time.Duration) (ws syscall.WaitStatus, ok bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if wpid == pid {
			return ws, true
		}
		if err == syscall.ECHILD && syscall.Kill(pid, 0) == syscall.ESRCH {
			return ws, false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ws, false
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return strings.Contains(err.Error(), "refused")
}

// waitUp polls base+"/healthz" until any HTTP answer comes back.
func waitUp(t *testing.T, p *proc, base string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("process exited before serving: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s not answering", base)
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notifySocket is a fake systemd notify socket on an abstract name.
type notifySocket struct {
	name string
	msgs chan map[string]string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{
		name: fmt.Sprintf("@hotswapdemo-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		msgs: make(chan map[string]string, 100),
	}
	c := notifyListener(t, n.name)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			m := map[string]string{}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				if kv := strings.SplitN(line, "=", 2); len(kv) == 2 {
					m[kv[0]] = kv[1]
				}
			}
			n.msgs <- m
		}
	}()
	return n
}

func (n *notifySocket) env() string { return "NOTIFY_SOCKET=" + n.name }

// expect returns the first message having all of want's keys with the given
// values ("*" matches any value), skipping others.
func (n *notifySocket) expect(t *testing.T, timeout time.Duration, want map[string]string) map[string]string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-n.msgs:
			match := true
			for k, v := range want {
				if got, ok := m[k]; !ok || (v != "*" && got != v) {
					match = false
				}
			}
			if match {
				return m
			}
			t.Logf("notify (skipped): %q", m)
		case <-deadline:
			t.Fatalf("no notify message %v within %s", want, timeout)
		}
	}
}

// none fails if a message with key arrives within d.
func (n *notifySocket) none(t *testing.T, d time.Duration, key string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-n.msgs:
			if _, ok := m[key]; ok {
				t.Fatalf("unexpected notify message %q", m)
			}
		case <-deadline:
			return
		}
	}
}

type reply struct {
	code    int
	body    string
	pid     string
	version string
}

func fetch(c *http.Client, url string) (reply, error) {
	resp, err := c.Get(url)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, string(b), resp.Header.Get("X-Hotswap-Pid"), resp.Header.Get("X-Hotswap-Version")}, nil
}

func mustFetch(t *testing.T, url string) reply {
	t.Helper()
	r, err := fetch(&http.Client{Timeout: 10 * time.Second}, url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pidFileIs(path string, pid int) bool {
	got, err := readPIDFile(path)
	return err == nil && got == pid
}

func TestProcVersionFlag(t *testing.T) {
	for _, tc := range [][2]string{{"1.0.0", ""}, {"1.0.0", faultWrongVersion}, {"1.0.0", faultExitAtStart}} {
		out, err := exec.Command(binary(t, tc[0], tc[1]), "--version").Output()
		if err != nil || string(out) != "1.0.0\n" {
			t.Errorf("fault %q: --version = %q, %v; want %q, exit 0", tc[1], out, err, "1.0.0\n")
		}
	}
	if err := exec.Command(binary(t, "1.0.0", ""), "--no-such-flag").Run(); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestProcExitAtStart(t *testing.T) {
	addr := freeAddr(t)
	p := start(t, binary(t, "1.0.0", faultExitAtStart), []string{"--listen", addr}, nil)
	if code := p.exitCode(t, 10*time.Second); code != 3 {
		t.Errorf("built-in exit-at-start: exit %d, want 3", code)
	}
	p = start(t, binary(t, "1.0.0", ""), []string{"--listen", addr}, []string{"HOTSWAP_FAULT=exit-at-start"})
	if code := p.exitCode(t, 10*time.Second); code != 3 {
		t.Errorf("HOTSWAP_FAULT=exit-at-start: exit %d, want 3", code)
	}
	p = start(t, binary(t, "1.0.0", ""), []string{"--listen", addr}, []string{"HOTSWAP_FAULT=bogus"})
	if code := p.exitCode(t, 10*time.Second); code != 2 {
		t.Errorf("HOTSWAP_FAULT=bogus: exit %d, want 2", code)
	}
	if !refused(addr) {
		t.Error("something listens after exit-at-start")
	}
}

func TestProcReadyAndStop(t *testing.T) {
	ns := newNotifySocket(t)
	addr := freeAddr(t)
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	p := start(t, binary(t, "1.0.0", ""), []string{"--pid-file", pidFile}, []string{ns.env(), "HOTSWAP_LISTEN=" + addr})
	ns.expect(t, 10*time.Second, map[string]string{"READY": "1", "MAINPID": strconv.Itoa(p.pid())})
	if !pidFileIs(pidFile, p.pid()) {
		t.Errorf("pid file does not hold %d", p.pid())
	}
	r := mustFetch(t, "http://"+addr+"/healthz")
	h := decodeHealth(t, r.body)
	if r.code != 200 || h != (health{Status: "ok", Version: "1.0.0", PID: p.pid()}) {
		t.Errorf("/healthz = %d %+v", r.code, h)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	ns.expect(t, time.Second, map[string]string{"STOPPING": "1"})
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

func TestProcFaults(t *testing.T) {
	for _, tc := range []struct {
		name        string
		bin         string // build-time fault
		env         string // HOTSWAP_FAULT
		code        int
		status      string
		version     string
		expectReady bool
	}{
		{"env-never-ready", "", faultNeverReady, 503, "starting", "1.0.0", false},
		{"env-unhealthy", "", faultUnhealthy, 503, "unhealthy", "1.0.0", true},
		{"env-wrong-version", "", faultWrongVersion, 200, "ok", "1.0.0-wrong", true},
		{"built-never-ready-wins-over-env", faultNeverReady, faultWrongVersion, 503, "starting", "1.0.0", false},
		{"built-unhealthy", faultUnhealthy, "", 503, "unhealthy", "1.0.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNotifySocket(t)
			addr := freeAddr(t)
			pidFile := filepath.Join(t.TempDir(), "app.pid")
			p := start(t, binary(t, "1.0.0", tc.bin), []string{"--listen", addr, "--pid-file", pidFile},
				[]string{ns.env(), "HOTSWAP_FAULT=" + tc.env})
			base := "http://" + addr
			waitUp(t, p, base)
			r := mustFetch(t, base+"/healthz")
			h := decodeHealth(t, r.body)
			if r.code != tc.code || h.Status != tc.status || h.Version != tc.version || h.PID != p.pid() {
				t.Errorf("/healthz = %d %+v; want %d %s %s", r.code, h, tc.code, tc.status, tc.version)
			}
			if r := mustFetch(t, base+"/"); r.body != tc.version+"\n" {
				t.Errorf("/ = %q", r.body)
			}
			if tc.expectReady {
				ns.expect(t, 5*time.Second, map[string]string{"READY": "1"})
				waitFor(t, "pid file", 5*time.Second, func() bool { return pidFileIs(pidFile, p.pid()) })
			} else {
				ns.none(t, 500*time.Millisecond, "READY")
				if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
					t.Errorf("never-ready wrote a pid file: %v", err)
				}
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.exitCode(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// TestProcErrorsFault: a binary built with the errors fault passes its health
// check and signals readiness, but / answers 500, and /stats shows it.
func TestProcErrorsFault(t *testing.T) {
	ns := newNotifySocket(t)
	addr := freeAddr(t)
	p := start(t, binary(t, "5.0.0", faultErrors), []string{"--listen", addr}, []string{ns.env()})
	base := "http://" + addr
	waitUp(t, p, base)
	ns.expect(t, 5*time.Second, map[string]string{"READY": "1"})
	if r := mustFetch(t, base+"/healthz"); r.code != 200 || decodeHealth(t, r.body).Status != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", r.code, r.body)
	}
	for i := 0; i < 4; i++ {
		if r := mustFetch(t, base+"/"); r.code != 500 || r.body != "injected error\n" || r.version != "5.0.0" {
			t.Errorf("/ = %d %q (version %q), want 500 injected error", r.code, r.body, r.version)
		}
	}
	r := mustFetch(t, base+"/stats")
	if r.code != 200 || r.body != `{"version":"5.0.0","requests":4,"errors":4,"error_rate":1}`+"\n" {
		t.Errorf("/stats = %d %q", r.code, r.body)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestProcSlowFault: a binary built with the slow fault (build.sh) signals
// readiness and answers /healthz at once, but / only after the delay: 300 ms,
// or HOTSWAP_FAULT_DELAY_MS; a bad HOTSWAP_FAULT_DELAY_MS fails the start.
func TestProcSlowFault(t *testing.T) {
	bin := binary(t, "6.0.0", faultSlow)
	for _, tc := range []struct {
		env            string
		atLeast, below time.Duration
	}{
		{"", defaultFaultDelay, 10 * time.Second},
		{"HOTSWAP_FAULT_DELAY_MS=50", 50 * time.Millisecond, defaultFaultDelay},
	} {
		ns := newNotifySocket(t)
		addr := freeAddr(t)
		env := []string{ns.env()}
		if tc.env != "" {
			env = append(env, tc.env)
		}
		p := start(t, bin, []string{"--listen", addr}, env)
		base := "http://" + addr
		waitUp(t, p, base)
		ns.expect(t, 5*time.Second, map[string]string{"READY": "1"})
		started := time.Now()
		r := mustFetch(t, base+"/healthz")
		if took := time.Since(started); r.code != 200 || decodeHealth(t, r.body).Status != "ok" || r.version != "6.0.0" || took >= tc.atLeast {
			t.Errorf("%q: /healthz = %d %q (version %q) after %s, want 200 ok 6.0.0 at once", tc.env, r.code, r.body, r.version, took)
		}
		started = time.Now()
		r = mustFetch(t, base+"/")
		if took := time.Since(started); r.code != 200 || r.body != "6.0.0\n" || took < tc.atLeast || took >= tc.below {
			t.Errorf("%q: / = %d %q after %s, want 200 6.0.0 after %s to %s", tc.env, r.code, r.body, took, tc.atLeast, tc.below)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exitCode(t, 10*time.Second); code != 0 {
			t.Errorf("%q: exit %d", tc.env, code)
		}
	}

	addr := freeAddr(t)
	p := start(t, bin, []string{"--listen", addr}, []string{"HOTSWAP_FAULT_DELAY_MS=-1"})
	if code := p.exitCode(t, 10*time.Second); code != 2 {
		t.Errorf("HOTSWAP_FAULT_DELAY_MS=-1: exit %d, want 2", code)
	}
	if b, _ := os.ReadFile(p.log); !strings.Contains(string(b), `HOTSWAP_FAULT_DELAY_MS="-1": want a whole number of milliseconds`) {
		t.Errorf("HOTSWAP_FAULT_DELAY_MS=-1: log lacks the reason:\n%s", b)
	}
	if !refused(addr) {
		t.Error("something listens after the refused start")
	}
}

// listenerFile returns a fresh 127.0.0.1 listening socket as a file, as
// systemd would hold it for a .socket unit.
func listenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

func TestProcInheritedListener(t *testing.T) {
	bin := binary(t, "1.0.0", "")
	// LISTEN_PID must be the service's own PID: set it from a shell that execs.
	const withListenPID = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`

	for _, tc := range []struct {
		name     string
		argv     []string
		env      []string
		onSocket bool // serves on the passed socket (else binds --listen)
	}{
		{"systemd", []string{"/bin/sh", "-c", withListenPID, bin}, []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=app"}, true},
		{"systemd-other-pid", []string{bin}, []string{"LISTEN_FDS=1", "LISTEN_PID=1"}, false},
		{"systemd-no-fds", []string{"/bin/sh", "-c", withListenPID, bin}, []string{"LISTEN_FDS=0"}, false},
		{"upgrade-marker", []string{bin}, []string{"LISTEN_FDS=1", "HOTSWAP_INHERIT_FD=3"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, sockAddr := listenerFile(t)
			listenAddr := freeAddr(t)
			p := start(t, tc.argv[0], append(tc.argv[1:], "--listen", listenAddr), tc.env, f)
			served, idle := sockAddr, listenAddr
			if !tc.onSocket {
				served, idle = listenAddr, sockAddr
			}
			waitUp(t, p, "http://"+served)
			r := mustFetch(t, "http://"+served+"/")
			if r.code != 200 || r.body != "1.0.0\n" || r.pid != strconv.Itoa(p.pid()) {
				t.Errorf("GET / on %s = %+v", served, r)
			}
			if !tc.onSocket {
				// The passed socket is open (we hold it) but nobody accepts.
				c := &http.Client{Timeout: 300 * time.Millisecond}
				if _, err := fetch(c, "http://"+idle+"/"); err == nil {
					t.Errorf("passed socket answered although it should be ignored")
				}
			} else if !refused(idle) {
				t.Errorf("--listen %s bound although a listener was passed", idle)
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.exitCode(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

func TestProcSIGTERMDrainsInFlight(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	p := start(t, binary(t, "1.0.0", ""), []string{"--listen", addr, "--drain-timeout", "10s"}, nil)
	waitUp(t, p, base)

	type result struct {
		r   reply
		err error
		at  time.Time
	}
	slow := make(chan result, 1)
	go func() {
		r, err := fetch(&http.Client{Timeout: 15 * time.Second}, base+"/slow?ms=1500")
		slow <- result{r, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight
	sigAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)

	waitFor(t, "listener closed", 2*time.Second, func() bool { return refused(addr) })
	select {
	case <-p.done:
		t.Fatal("process exited while a request was in flight")
	default:
	}
	res := <-slow
	if res.err != nil || res.r.code != 200 || res.r.body != "1.0.0\n" {
		t.Fatalf("in-flight request: %+v %v", res.r, res.err)
	}
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	t.Logf("in-flight request finished %s after SIGTERM", res.at.Sub(sigAt).Round(time.Millisecond))
}

func TestProcSIGTERMDrainTimeout(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	p := start(t, binary(t, "1.0.0", ""), []string{"--listen", addr, "--drain-timeout", "300ms"}, nil)
	waitUp(t, p, base)
	slow := make(chan error, 1)
	go func() {
		_, err := fetch(&http.Client{Timeout: 15 * time.Second}, base+"/slow?ms=5000")
		slow <- err
	}()
	time.Sleep(300 * time.Millisecond)
	sigAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 3*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if took := time.Since(sigAt); took < 250*time.Millisecond {
		t.Errorf("exited %s after SIGTERM, before the drain timeout", took)
	}
	if err := <-slow; err == nil {
		t.Error("request outliving the drain timeout completed")
	}
}

// load sends GET / in a loop, bounded in count and time, until stopped.
type load struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	ok       int
	failures []string
	versions map[string]int
	pids     map[string]int
}

func startLoad(url string, keepAlive bool) *load {
	const maxRequests, maxDuration = 20000, 30 * time.Second
	l := &load{stop: make(chan struct{}), done: make(chan struct{}), versions: map[string]int{}, pids: map[string]int{}}
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	go func() {
		defer close(l.done)
		defer tr.CloseIdleConnections()
		deadline := time.Now().Add(maxDuration)
		for i := 0; i < maxRequests && time.Now().Before(deadline); i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			r, err := fetch(c, url)
			l.mu.Lock()
			switch {
			case err != nil:
				l.failures = append(l.failures, err.Error())
			case r.code != 200:
				l.failures = append(l.failures, fmt.Sprintf("status %d: %s", r.code, r.body))
			default:
				l.ok++
				l.versions[strings.TrimSpace(r.body)]++
				l.pids[r.pid]++
			}
			l.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	return l
}

func (l *load) finish() *load {
	close(l.stop)
	<-l.done
	return l
}

// release makes dir/releases/<name>/app a copy of bin.
func release(t *testing.T, dir, name, bin string) {
	t.Helper()
	d := filepath.Join(dir, "releases", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "app"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// switchCurrent points dir/current at releases/<name> atomically.
func switchCurrent(t *testing.T, dir, name string) {
	t.Helper()
	tmp := filepath.Join(dir, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", name), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
}

func TestProcSIGHUPUpgrade(t *testing.T) {
	dir := t.TempDir()
	release(t, dir, "1", binary(t, "1.0.0", ""))
	release(t, dir, "2", binary(t, "2.0.0", ""))
	switchCurrent(t, dir, "1")
	ns := newNotifySocket(t)
	addr := freeAddr(t)
	base := "http://" + addr
	pidFile := filepath.Join(dir, "app.pid")

	// Started through the symlink, the way a unit's ExecStart= would.
	old := start(t, filepath.Join(dir, "current", "app"),
		[]string{"--listen", addr, "--pid-file", pidFile, "--upgrade-timeout", "20s", "--drain-timeout", "10s"},
		[]string{ns.env()})
	ns.expect(t, 10*time.Second, map[string]string{"READY": "1", "MAINPID": strconv.Itoa(old.pid())})

	fresh, reused := startLoad(base+"/", false), startLoad(base+"/", true)
	inflight := make(chan error, 1)
	go func() { // an in-flight request on the old process must complete too
		r, err := fetch(&http.Client{Timeout: 15 * time.Second}, base+"/slow?ms=1000")
		if err == nil && (r.code != 200 || r.body != "1.0.0\n") {
			err = fmt.Errorf("slow request: %+v", r)
		}
		inflight <- err
	}()
	time.Sleep(300 * time.Millisecond)

	switchCurrent(t, dir, "2")
	old.cmd.Process.Signal(syscall.SIGHUP)
	reload := ns.expect(t, 5*time.Second, map[string]string{"RELOADING": "1", "MONOTONIC_USEC": "*"})
	usec, _ := strconv.ParseUint(reload["MONOTONIC_USEC"], 10, 64)
	if now, _ := monotonicUsec(); usec == 0 || usec > now || now-usec > 10e6 {
		t.Errorf("MONOTONIC_USEC=%d, CLOCK_MONOTONIC now %d", usec, now)
	}
	ready := ns.expect(t, 20*time.Second, map[string]string{"READY": "1", "MAINPID": "*"})
	newPID, _ := strconv.Atoi(ready["MAINPID"])
	adopt(t, newPID)
	if newPID == old.pid() || !alive(newPID) {
		t.Fatalf("MAINPID=%d after upgrade (old %d)", newPID, old.pid())
	}
	waitFor(t, "pid file naming the new process", 5*time.Second, func() bool { return pidFileIs(pidFile, newPID) })
	if code := old.exitCode(t, 15*time.Second); code != 0 {
		t.Errorf("old process exit %d, want 0", code)
	}
	if err := <-inflight; err != nil {
		t.Errorf("in-flight request across the upgrade: %v", err)
	}
	time.Sleep(300 * time.Millisecond)

	for _, l := range []*load{fresh.finish(), reused.finish()} {
		t.Logf("load: %d ok, %d failed, versions %v, pids %v", l.ok, len(l.failures), l.versions, l.pids)
		if len(l.failures) > 0 {
			t.Errorf("%d failed requests across the upgrade, first: %s", len(l.failures), l.failures[0])
		}
		if l.versions["1.0.0"] == 0 || l.versions["2.0.0"] == 0 {
			t.Errorf("load did not span the upgrade: %v", l.versions)
		}
	}
	// The shared socket must stay non-blocking, or an old process's accept()
	// could block in the kernel and keep it from exiting.
	if flags := fdFlags(t, newPID, 3); flags&syscall.O_NONBLOCK == 0 || flags&syscall.O_CLOEXEC == 0 {
		t.Errorf("inherited listener fd 3 flags %#o: want O_NONBLOCK|O_CLOEXEC", flags)
	}
	r := mustFetch(t, base+"/healthz")
	if h := decodeHealth(t, r.body); r.code != 200 || h.Version != "2.0.0" || h.PID != newPID {
		t.Errorf("after upgrade /healthz = %d %+v", r.code, h)
	}

	// The new process inherited its listener: it can hand it on again.
	syscall.Kill(newPID, syscall.SIGHUP)
	ns.expect(t, 5*time.Second, map[string]string{"RELOADING": "1"}) // skips older messages
	third := ns.expect(t, 20*time.Second, map[string]string{"READY": "1", "MAINPID": "*"})
	thirdPID, _ := strconv.Atoi(third["MAINPID"])
	adopt(t, thirdPID)
	if thirdPID == newPID {
		t.Fatal("second upgrade kept the PID")
	}
	if ws, ok := waitPID(newPID, 15*time.Second); !ok || ws.ExitStatus() != 0 {
		t.Errorf("second process: reaped=%v status %d", ok, ws.ExitStatus())
	}
	waitFor(t, "pid file naming the third process", 5*time.Second, func() bool { return pidFileIs(pidFile, thirdPID) })
	if r := mustFetch(t, base+"/"); r.body != "2.0.0\n" || r.pid != strconv.Itoa(thirdPID) {
		t.Errorf("after second upgrade: %+v", r)
	}

	syscall.Kill(thirdPID, syscall.SIGTERM)
	if ws, ok := waitPID(thirdPID, 15*time.Second); !ok || ws.ExitStatus() != 0 {
		t.Errorf("third process: reaped=%v status %d", ok, ws.ExitStatus())
	}
	if !refused(addr) {
		t.Error("port still open after the last process stopped")
	}
}

// fdFlags returns the open flags of fd in process pid (from /proc/<pid>/fdinfo).
func fdFlags(t *testing.T, pid, fd int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v := strings.TrimPrefix(line, "flags:"); v != line {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatalf("no flags in fdinfo: %s", b)
	return 0
}

// children lists the child PIDs of pid (Linux /proc/<pid>/task/*/children).
func children(pid int) []string {
	paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []string
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

func TestProcSIGHUPUpgradeFailures(t *testing.T) {
	dir := t.TempDir()
	release(t, dir, "1", binary(t, "1.0.0", ""))
	release(t, dir, "never-ready", binary(t, "3.0.0", faultNeverReady))
	release(t, dir, "exit-at-start", binary(t, "4.0.0", faultExitAtStart))
	release(t, dir, "2", binary(t, "2.0.0", ""))
	switchCurrent(t, dir, "1")
	ns := newNotifySocket(t)
	addr := freeAddr(t)
	base := "http://" + addr
	pidFile := filepath.Join(dir, "app.pid")
	old := start(t, filepath.Join(dir, "current", "app"),
		[]string{"--listen", addr, "--pid-file", pidFile, "--upgrade-timeout", "1500ms", "--drain-timeout", "2s"},
		[]string{ns.env()})
	oldPID := strconv.Itoa(old.pid())
	ns.expect(t, 10*time.Second, map[string]string{"READY": "1", "MAINPID": oldPID})

	for _, tc := range []struct {
		release string
		minTime time.Duration // the failure cannot be noticed sooner
	}{
		{"never-ready", 1500 * time.Millisecond},
		{"exit-at-start", 0},
		{"missing", 0},
	} {
		t.Run(tc.release, func(t *testing.T) {
			switchCurrent(t, dir, tc.release)
			sent := time.Now()
			old.cmd.Process.Signal(syscall.SIGHUP)
			ns.expect(t, 2*time.Second, map[string]string{"RELOADING": "1"})
			// Failure: systemd is told the old process is still the main one.
			m := ns.expect(t, 10*time.Second, map[string]string{"READY": "1", "MAINPID": "*", "STATUS": "*"})
			took := time.Since(sent)
			if m["MAINPID"] != oldPID || !strings.HasPrefix(m["STATUS"], "upgrade failed") {
				t.Errorf("after failed upgrade: %q", m)
			}
			if took < tc.minTime || (tc.minTime == 0 && took > time.Second) {
				t.Errorf("failure noticed after %s", took)
			}
			if !pidFileIs(pidFile, old.pid()) {
				t.Error("pid file changed")
			}
			if kids := children(old.pid()); len(kids) > 0 {
				t.Errorf("failed child not reaped: %v", kids)
			}
			for i := 0; i < 20; i++ {
				if r := mustFetch(t, base+"/healthz"); r.code != 200 || r.pid != oldPID || r.version != "1.0.0" {
					t.Fatalf("after failed upgrade: %+v", r)
				}
			}
		})
	}

	// And a good release still goes through afterwards.
	switchCurrent(t, dir, "2")
	old.cmd.Process.Signal(syscall.SIGHUP)
	ns.expect(t, 5*time.Second, map[string]string{"RELOADING": "1"})
	m := ns.expect(t, 20*time.Second, map[string]string{"READY": "1", "MAINPID": "*"})
	newPID, _ := strconv.Atoi(m["MAINPID"])
	adopt(t, newPID)
	if code := old.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("old process exit %d", code)
	}
	if r := mustFetch(t, base+"/"); r.body != "2.0.0\n" || r.pid != strconv.Itoa(newPID) || !pidFileIs(pidFile, newPID) {
		t.Errorf("after good upgrade: %+v", r)
	}
	syscall.Kill(newPID, syscall.SIGTERM)
	if ws, ok := waitPID(newPID, 10*time.Second); !ok || ws.ExitStatus() != 0 {
		t.Errorf("new process: reaped=%v status %d", ok, ws.ExitStatus())
	}
}

// TestProcConfig: a config the service cannot run with fails the start (exit
// 1, never listening, never ready); a good one and $HOTSWAP_MESSAGE show in
// /healthz, no other variable does; under --hup reload SIGHUP takes a new
// config in the same process and keeps the old one when the new one is bad.
func TestProcConfig(t *testing.T) {
	bin := binary(t, "1.0.0", "")
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	addr := freeAddr(t)
	base := "http://" + addr

	for _, tc := range []struct{ name, content string }{
		{"unknown key", "greeting = three\nno_such_key = 1\n"},
		{"missing =", "greeting three\n"},
		{"unreadable", ""}, // no file
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(conf)
			if tc.content != "" {
				writeConfig(t, conf, tc.content)
			}
			ns := newNotifySocket(t)
			p := start(t, bin, []string{"--listen", addr, "--config", conf}, []string{ns.env()})
			if code := p.exitCode(t, 10*time.Second); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if b, _ := os.ReadFile(p.log); !strings.Contains(string(b), conf) {
				t.Errorf("log does not name %s:\n%s", conf, b)
			}
			ns.none(t, 100*time.Millisecond, "READY")
			if !refused(addr) {
				t.Error("something listens after a bad config")
			}
		})
	}

	p := start(t, bin, []string{"--listen", addr, "--hup", "bogus"}, nil)
	if code := p.exitCode(t, 10*time.Second); code != 2 {
		t.Errorf("--hup bogus: exit %d, want 2", code)
	}

	const secret = "hs-secret-7f3a9c"
	writeConfig(t, conf, "# demo\ngreeting = one\n")
	ns := newNotifySocket(t)
	p = start(t, bin, []string{"--listen", addr, "--config", conf, "--hup", "reload"},
		[]string{ns.env(), "HOTSWAP_MESSAGE=m1", "HOTSWAP_TOKEN=" + secret})
	ns.expect(t, 10*time.Second, map[string]string{"READY": "1", "MAINPID": strconv.Itoa(p.pid())})
	healthz := func() health {
		t.Helper()
		r := mustFetch(t, base+"/healthz")
		if r.code != 200 || strings.Contains(r.body, secret) {
			t.Fatalf("/healthz = %d %s", r.code, r.body)
		}
		return decodeHealth(t, r.body)
	}
	if h, want := healthz(), (health{Status: "ok", Version: "1.0.0", PID: p.pid(), Greeting: "one", Message: "m1"}); h != want {
		t.Errorf("/healthz = %+v, want %+v", h, want)
	}

	for _, step := range []struct{ content, greeting string }{
		{"greeting = two\n", "two"},
		{"greeting = three\nno_such_key = 1\n", "two"}, // bad: kept
		{"greeting = four\n", "four"},
	} {
		writeConfig(t, conf, step.content)
		p.cmd.Process.Signal(syscall.SIGHUP)
		ns.expect(t, 5*time.Second, map[string]string{"RELOADING": "1", "MONOTONIC_USEC": "*"})
		ns.expect(t, 5*time.Second, map[string]string{"READY": "1"})
		if h := healthz(); h.Greeting != step.greeting || h.PID != p.pid() || h.Message != "m1" {
			t.Errorf("after SIGHUP with %q: /healthz %+v, want greeting %s from pid %d", step.content, h, step.greeting, p.pid())
		}
		if kids := children(p.pid()); len(kids) > 0 {
			t.Errorf("reload started processes: %v", kids)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}
