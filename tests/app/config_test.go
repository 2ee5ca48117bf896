package main

// In-process tests of --config, HOTSWAP_MESSAGE in /healthz and --hup reload.
// The same through the built binary (exit status, real SIGHUP) is in
// process_linux_test.go.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     config
		err      string // substring of the error; "" for none
	}{
		{"spaces", "greeting = hello\n", config{"hello"}, ""},
		{"no spaces", "greeting=hello", config{"hello"}, ""},
		{"value with spaces and =", "  greeting   =  hello, world = 1  \r\n", config{"hello, world = 1"}, ""},
		{"empty value", "greeting =\n", config{""}, ""},
		{"empty file", "", config{}, ""},
		{"comments and blank lines", "# demo\n\n   \n  # indented comment\ngreeting = one\n\n# greeting = two\n", config{"one"}, ""},
		{"last one wins", "greeting = one\ngreeting = two\n", config{"two"}, ""},
		{"missing =", "# demo\ngreeting one\n", config{}, `line 2: want "key = value", found no "="`},
		{"unknown key", "greeting = three\nno_such_key = 1\n", config{}, `line 2: unknown key "no_such_key" (known: greeting)`},
		{"empty key", "= x\n", config{}, `line 1: unknown key ""`},
		{"key is case-sensitive", "Greeting = x\n", config{}, `unknown key "Greeting"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(strings.NewReader(tc.in))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("parseConfig(%q): %v", tc.in, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("parseConfig(%q): error %v, want one containing %q", tc.in, err, tc.err)
			case got != tc.want:
				t.Errorf("parseConfig(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// A bad line is named by its number, not quoted: config files may hold
// secrets, and the error goes to the log and to systemd's STATUS=.
func TestParseConfigErrorDoesNotQuoteTheLine(t *testing.T) {
	_, err := parseConfig(strings.NewReader("greeting = x\ns3cr3t-value\n"))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v", err)
	}
}

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.conf")
	writeConfig(t, path, "greeting = hi\n")
	if cfg, err := loadConfig(path); err != nil || cfg.Greeting != "hi" {
		t.Errorf("loadConfig = %+v, %v", cfg, err)
	}
	// Errors name the file.
	writeConfig(t, path, "bogus = 1\n")
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), path+": line 1: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing.conf"), dir} {
		if _, err := loadConfig(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("loadConfig(%s): %v, want an error naming it", bad, err)
		}
	}
}

func TestHealthzGreetingAndMessage(t *testing.T) {
	pid := os.Getpid()
	for _, tc := range []struct {
		name              string
		greeting, message string
		withConfig        bool
		body              string
	}{
		{"none", "", "", false, fmt.Sprintf(`{"status":"ok","version":"1.2.3","pid":%d}`, pid)},
		{"empty greeting", "", "", true, fmt.Sprintf(`{"status":"ok","version":"1.2.3","pid":%d}`, pid)},
		{"greeting", "hello, world", "", true, fmt.Sprintf(`{"status":"ok","version":"1.2.3","pid":%d,"greeting":"hello, world"}`, pid)},
		{"message", "", "m1", false, fmt.Sprintf(`{"status":"ok","version":"1.2.3","pid":%d,"message":"m1"}`, pid)},
		{"both", "one", "m1", true, fmt.Sprintf(`{"status":"ok","version":"1.2.3","pid":%d,"greeting":"one","message":"m1"}`, pid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService("1.2.3", "")
			svc.message = tc.message
			if tc.withConfig {
				svc.setConfig(config{Greeting: tc.greeting})
			}
			code, body, _ := get(t, serve(t, svc)+"/healthz")
			if code != 200 || body != tc.body+"\n" {
				t.Errorf("/healthz = %d %s, want 200 %s", code, body, tc.body)
			}
			want := health{Status: "ok", Version: "1.2.3", PID: pid, Greeting: tc.greeting, Message: tc.message}
			if h := decodeHealth(t, body); h != want {
				t.Errorf("/healthz = %+v, want %+v", h, want)
			}
		})
	}
}

func TestHupFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"hotswapdemo", "--hup", "restart"}, &stdout, &stderr); code != 2 {
		t.Errorf("--hup restart: exit %d, want 2", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, `invalid value "restart" for flag -hup: want upgrade or reload`) {
		t.Errorf("--hup restart: stderr %q", msg)
	}
	for _, mode := range []string{hupUpgrade, hupReload} {
		stdout.Reset()
		if code := run([]string{"hotswapdemo", "--hup", mode, "--version"}, &stdout, &stderr); code != 0 || stdout.String() != version+"\n" {
			t.Errorf("--hup %s --version: exit %d, %q", mode, code, stdout.String())
		}
	}
}

// TestReloadConfig: under --hup reload, SIGHUP re-reads the file in the same
// process; systemd hears RELOADING=1 (with MONOTONIC_USEC) then READY=1; a
// bad or missing file leaves the running config in place.
func TestReloadConfig(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	notify := notifyListener(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	path := filepath.Join(t.TempDir(), "app.conf")
	writeConfig(t, path, "greeting = one\n")

	svc := newService("1.0.0", "")
	svc.message = "m1"
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	svc.setConfig(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: svc.handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	a := &app{svc: svc, srv: srv, ln: ln, configPath: path, hup: hupReload, drainTimeout: 5 * time.Second, ready: true}

	sigs := make(chan os.Signal, 1)
	ret := make(chan int, 1)
	go func() { ret <- a.loop(sigs, make(chan error)) }()

	_, withUsec := monotonicUsec()
	for _, step := range []struct {
		name, content string // content "" removes the file
		greeting      string
		status        string
	}{
		{"changed", "# edited\ngreeting = two\n", "two", "serving version 1.0.0"},
		{"unknown key", "greeting = three\nno_such_key = 1\n", "two", "config reload failed, running config kept: config " + path + ": line 2: unknown key"},
		{"missing =", "greeting three\n", "two", "config reload failed, running config kept: "},
		{"missing file", "", "two", "config reload failed, running config kept: config: open " + path},
		{"valid again", "greeting = four", "four", "serving version 1.0.0"},
	} {
		if step.content == "" {
			os.Remove(path)
		} else {
			writeConfig(t, path, step.content)
		}
		sigs <- syscall.SIGHUP
		if msg := readDatagram(t, notify); !strings.HasPrefix(msg, "RELOADING=1\n") || withUsec != strings.Contains(msg, "\nMONOTONIC_USEC=") {
			t.Errorf("%s: first notification %q, want RELOADING=1 (MONOTONIC_USEC: %v)", step.name, msg, withUsec)
		}
		// READY=1 comes once the reload is done: /healthz shows its result now.
		if msg := readDatagram(t, notify); !strings.HasPrefix(msg, "READY=1\nSTATUS="+step.status) {
			t.Errorf("%s: second notification %q, want READY=1 and STATUS=%s...", step.name, msg, step.status)
		}
		code, body, hdr := get(t, base+"/healthz")
		want := health{Status: "ok", Version: "1.0.0", PID: os.Getpid(), Greeting: step.greeting, Message: "m1"}
		if h := decodeHealth(t, body); code != 200 || h != want || hdr.Get("X-Hotswap-Pid") != fmt.Sprint(os.Getpid()) {
			t.Errorf("%s: /healthz = %d %+v, want 200 %+v", step.name, code, h, want)
		}
	}

	sigs <- syscall.SIGTERM
	if code := <-ret; code != 0 {
		t.Errorf("loop returned %d after SIGTERM, want 0", code)
	}
	if msg := readDatagram(t, notify); msg != "STOPPING=1" {
		t.Errorf("on stop: %q", msg)
	}
}

// A process that never became ready must not say READY=1 because of a reload.
func TestReloadWhenNotReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	notify := notifyListener(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	path := filepath.Join(t.TempDir(), "app.conf")
	writeConfig(t, path, "greeting = two\n")
	a := &app{svc: newService("1.0.0", faultNeverReady), configPath: path, hup: hupReload}
	a.reload()
	if g := a.svc.greeting(); g != "two" {
		t.Errorf("greeting %q after reload, want two", g)
	}
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := notify.ReadFrom(make([]byte, 256)); err == nil {
		t.Errorf("sent a notification (%d bytes) while not ready, want none", n)
	}
}
