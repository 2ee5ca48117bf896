// Command hotswapdemo is the demo HTTP service used by the hotswap.deploy tests,
// demos and benchmarks. It supports every restart strategy of the collection:
// systemd socket activation (LISTEN_FDS), sd_notify readiness and reload,
// SO_REUSEPORT, graceful draining on SIGTERM and a tableflip-style re-exec on
// SIGHUP. See README.md for the contract.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Set at build time: -ldflags "-X main.version=1.2.3 -X main.fault=unhealthy".
var (
	version = "dev"
	fault   = ""
)

// Faults a binary can be built with (or, for tests, pick via HOTSWAP_FAULT).
const (
	faultExitAtStart  = "exit-at-start"
	faultNeverReady   = "never-ready"
	faultUnhealthy    = "unhealthy"
	faultWrongVersion = "wrong-version"
	faultErrors       = "errors"
	faultExitOnTerm   = "exit-on-term"
	faultSlow         = "slow"
)

// Under the slow fault every counted request (not /healthz, /stats or
// /metrics) waits this long before it is served; HOTSWAP_FAULT_DELAY_MS
// overrides it at run time, from 0 up to maxSlow.
const defaultFaultDelay = 300 * time.Millisecond

// exitNow ends the process under the exit-on-term fault; a variable so that
// an in-process test can see the call instead of dying.
var exitNow = os.Exit

// activeFault returns the build-time fault, or HOTSWAP_FAULT when none was built in.
func activeFault() (string, error) {
	f := fault
	if f == "" {
		f = os.Getenv("HOTSWAP_FAULT")
	}
	switch f {
	case "", faultExitAtStart, faultNeverReady, faultUnhealthy, faultWrongVersion, faultErrors, faultExitOnTerm, faultSlow:
		return f, nil
	}
	return "", fmt.Errorf("unknown fault %q (known: %s, %s, %s, %s, %s, %s, %s)", f,
		faultExitAtStart, faultNeverReady, faultUnhealthy, faultWrongVersion, faultErrors, faultExitOnTerm, faultSlow)
}

// faultDelay is the extra latency of the slow fault: HOTSWAP_FAULT_DELAY_MS
// (whole milliseconds, 0 to maxSlow) when set and not empty, else
// defaultFaultDelay. Anything else is an error: the start must fail rather
// than run with a delay nobody asked for.
func faultDelay() (time.Duration, error) {
	v := os.Getenv("HOTSWAP_FAULT_DELAY_MS")
	if v == "" {
		return defaultFaultDelay, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > uint64(maxSlow.Milliseconds()) {
		return 0, fmt.Errorf("HOTSWAP_FAULT_DELAY_MS=%q: want a whole number of milliseconds from 0 to %d", v, maxSlow.Milliseconds())
	}
	return time.Duration(n) * time.Millisecond, nil
}

// What SIGHUP does (--hup).
const (
	hupUpgrade = "upgrade" // re-exec the binary: a new process (default)
	hupReload  = "reload"  // re-read --config in this process: same PID
)

// hupMode is the --hup flag: a bad value fails flag parsing, so the process
// exits 2 with usage before doing anything.
type hupMode string

func (m *hupMode) String() string { return string(*m) }

func (m *hupMode) Set(v string) error {
	switch v {
	case hupUpgrade, hupReload:
		*m = hupMode(v)
		return nil
	}
	return fmt.Errorf("want %s or %s", hupUpgrade, hupReload)
}

func defaultListen() string {
	if v := os.Getenv("HOTSWAP_LISTEN"); v != "" {
		return v
	}
	return "127.0.0.1:8080"
}

// app is one running process of the service.
type app struct {
	svc            *service
	srv            *http.Server
	ln             net.Listener
	args           []string // os.Args[1:], passed unchanged to an upgrade child
	execPath       string   // argv[0] made absolute at start; re-exec'd on SIGHUP
	pidFile        string
	configPath     string // --config, re-read on SIGHUP under --hup reload
	hup            hupMode
	drainTimeout   time.Duration
	upgradeTimeout time.Duration
	readyPipe      *os.File // set when started as an upgrade child
	ready          bool
}

func main() {
	log.SetPrefix(fmt.Sprintf("hotswapdemo[%d]: ", os.Getpid()))
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(filepath.Base(args[0]), flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	listen := fs.String("listen", defaultListen(), "address to bind when no listener is inherited (default from env HOTSWAP_LISTEN)")
	reuseport := fs.Bool("reuseport", false, "bind with SO_REUSEPORT so a second instance can share the port")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Second, "how long to wait for in-flight requests when stopping")
	upgradeTimeout := fs.Duration("upgrade-timeout", 60*time.Second, "how long a SIGHUP upgrade child may take to become ready")
	pidFile := fs.String("pid-file", "", "write the PID here (atomically) once ready")
	configPath := fs.String("config", "", "read the config (key = value lines) from this file at start; a bad one fails the start")
	hup := hupMode(hupUpgrade)
	fs.Var(&hup, "hup", "what SIGHUP does: upgrade (re-exec the binary) or reload (re-read --config, same PID)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return 2
	}
	if *showVersion {
		// The build version, whatever the fault: faults are run-time behaviour.
		fmt.Fprintln(stdout, version)
		return 0
	}

	flt, err := activeFault()
	if err != nil {
		log.Print(err)
		return 2
	}
	if flt == faultExitAtStart {
		log.Printf("fault %s: exiting with status 3", flt)
		return 3
	}
	var delay time.Duration
	if flt == faultSlow {
		// Read only by a slow build: other builds ignore the variable.
		if delay, err = faultDelay(); err != nil {
			log.Printf("fault %s: %v", flt, err)
			return 2
		}
	}

	// Catch signals before anything else: SIGHUP's default action is to die.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	a := &app{
		svc:            newService(version, flt),
		args:           args[1:],
		execPath:       resolveExecPath(args[0]),
		configPath:     *configPath,
		hup:            hup,
		drainTimeout:   *drainTimeout,
		upgradeTimeout: *upgradeTimeout,
	}
	a.svc.delay = delay
	a.svc.message = os.Getenv("HOTSWAP_MESSAGE")
	if a.configPath != "" {
		// Before listening or any readiness: a config the service cannot run
		// with must fail the start (or the upgrade), like a real service.
		cfg, err := loadConfig(a.configPath)
		if err != nil {
			log.Printf("%v; exiting", err)
			return 1
		}
		a.svc.setConfig(cfg)
		log.Printf("config %s: greeting %q", a.configPath, cfg.Greeting)
	}
	if *pidFile != "" {
		if a.pidFile, err = filepath.Abs(*pidFile); err != nil {
			log.Print(err)
			return 2
		}
	}
	if a.readyPipe, err = takeReadyPipe(); err != nil {
		log.Print(err)
		return 1
	}

	ln, source, err := getListener(*listen, *reuseport)
	if err != nil {
		log.Printf("listen: %v", err)
		return 1
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           a.svc.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.srv.Serve(ln) }()
	log.Printf("version %s (fault %q, SIGHUP %s) serving on %s (%s)", a.svc.version, flt, a.hup, ln.Addr(), source)
	if flt == faultSlow {
		log.Printf("fault %s: every request but /healthz, /stats and /metrics waits %s more", flt, delay)
	}

	if err := a.becomeReady(); err != nil {
		log.Printf("becoming ready: %v", err)
		a.srv.Close()
		return 1
	}
	return a.loop(sigs, serveErr)
}

// resolveExecPath makes argv[0] absolute without resolving symlinks, so that a
// re-exec on SIGHUP starts whatever binary that path names *then* (for example
// /opt/app/current/app after `current` was switched), not the old inode that
// /proc/self/exe still points at.
func resolveExecPath(argv0 string) string {
	p := argv0
	if p != "" && !strings.ContainsRune(p, os.PathSeparator) {
		if lp, err := exec.LookPath(p); err == nil {
			p = lp
		}
	}
	if p == "" {
		if exe, err := os.Executable(); err == nil {
			return exe
		}
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// becomeReady writes the PID file, tells systemd and, for an upgrade child,
// tells the parent. A never-ready build does none of it.
func (a *app) becomeReady() error {
	if a.svc.fault == faultNeverReady {
		log.Printf("fault %s: not signalling readiness", faultNeverReady)
		return nil
	}
	pid := os.Getpid()
	if a.pidFile != "" {
		if err := writePIDFile(a.pidFile, pid); err != nil {
			return err
		}
	}
	if err := sdNotify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=serving version %s", pid, a.svc.version)); err != nil {
		log.Printf("sd_notify: %v", err)
	}
	if a.readyPipe != nil {
		_, err := a.readyPipe.Write([]byte{1})
		a.readyPipe.Close()
		a.readyPipe = nil
		if err != nil {
			return fmt.Errorf("telling the parent we are ready: %w", err)
		}
	}
	a.ready = true
	return nil
}

type upgradeResult struct {
	pid int
	err error
}

// loop handles signals until the process should exit, and returns its exit code.
func (a *app) loop(sigs <-chan os.Signal, serveErr <-chan error) int {
	var abort chan struct{} // non-nil while an upgrade is in progress
	done := make(chan upgradeResult, 1)
	for {
		select {
		case err := <-serveErr:
			log.Printf("serve: %v", err)
			return 1

		case sig := <-sigs:
			if sig == syscall.SIGHUP && a.hup == hupReload {
				a.reload()
				continue
			}
			if sig == syscall.SIGHUP {
				if abort != nil {
					log.Print("SIGHUP: upgrade already in progress, ignored")
					continue
				}
				log.Printf("SIGHUP: starting %s", a.execPath)
				if err := sdNotify(reloadingMessage("upgrading")); err != nil {
					log.Printf("sd_notify: %v", err)
				}
				abort = make(chan struct{})
				go func(abort <-chan struct{}) {
					pid, err := a.upgrade(abort)
					done <- upgradeResult{pid, err}
				}(abort)
				continue
			}
			if sig == syscall.SIGTERM && a.svc.fault == faultExitOnTerm {
				// Like many real services: no drain, no STOPPING=1, PID file
				// left behind; in-flight requests and queued connections die.
				log.Printf("fault %s: %v: exiting at once", faultExitOnTerm, sig)
				exitNow(0)
				return 0 // reached only when a test replaced exitNow
			}
			log.Printf("%v: draining (timeout %s)", sig, a.drainTimeout)
			if abort != nil {
				close(abort)
				<-done
			}
			if a.ready {
				if err := sdNotify("STOPPING=1"); err != nil {
					log.Printf("sd_notify: %v", err)
				}
			}
			removePIDFileIfOurs(a.pidFile, os.Getpid())
			return a.drain()

		case res := <-done:
			abort = nil
			if res.err != nil {
				log.Printf("upgrade failed, still serving: %v", res.err)
				// Leave systemd's reload state and keep this process as the main one.
				if err := sdNotify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=upgrade failed: %v", os.Getpid(), res.err)); err != nil {
					log.Printf("sd_notify: %v", err)
				}
				continue
			}
			log.Printf("upgrade: process %d is ready, draining (timeout %s)", res.pid, a.drainTimeout)
			// The child said so itself; repeat it from the (still) main PID so
			// that units with NotifyAccess=main follow the new main PID too.
			if err := sdNotify(fmt.Sprintf("MAINPID=%d\nREADY=1", res.pid)); err != nil {
				log.Printf("sd_notify: %v", err)
			}
			return a.drain()
		}
	}
}

// reloadingMessage is the sd_notify message that starts a reload. systemd
// (Type=notify-reload) wants MONOTONIC_USEC with it to tell this reload
// from an earlier one.
func reloadingMessage(status string) string {
	msg := "RELOADING=1\nSTATUS=" + status
	if usec, ok := monotonicUsec(); ok {
		msg += fmt.Sprintf("\nMONOTONIC_USEC=%d", usec)
	}
	return msg
}

// reload re-reads the --config file in this process (--hup reload): same
// PID, same listener, nothing dropped. A new config that does not parse is
// logged and the running one kept: a bad edit must not take the service down.
// systemd is told RELOADING=1, then READY=1 either way (it ends the reload;
// the STATUS= says how it went), but only by a process that was ready: a
// never-ready one must not claim readiness now.
func (a *app) reload() {
	if a.ready {
		if err := sdNotify(reloadingMessage("reloading config")); err != nil {
			log.Printf("sd_notify: %v", err)
		}
	}
	status := fmt.Sprintf("serving version %s", a.svc.version)
	if a.configPath == "" {
		log.Print("SIGHUP: no --config, nothing to reload")
	} else if cfg, err := loadConfig(a.configPath); err != nil {
		log.Printf("SIGHUP: %v; keeping the running config", err)
		status = fmt.Sprintf("config reload failed, running config kept: %v", err)
	} else {
		a.svc.setConfig(cfg)
		log.Printf("SIGHUP: reloaded config %s: greeting %q", a.configPath, cfg.Greeting)
	}
	if a.ready {
		if err := sdNotify("READY=1\nSTATUS=" + status); err != nil {
			log.Printf("sd_notify: %v", err)
		}
	}
}

// drain stops accepting, waits for in-flight requests up to the drain timeout,
// then closes what is left. It always exits 0: the stop itself was orderly.
func (a *app) drain() int {
	ctx, cancel := context.WithTimeout(context.Background(), a.drainTimeout)
	defer cancel()
	start := time.Now()
	if err := a.srv.Shutdown(ctx); err != nil {
		log.Printf("drain: %v after %s, closing remaining connections", err, time.Since(start).Round(time.Millisecond))
		a.srv.Close()
		return 0
	}
	log.Printf("drained in %s, exiting", time.Since(start).Round(time.Millisecond))
	return 0
}
