package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// versionServer answers GET with version, in the header or only in the body.
func versionServer(t *testing.T, version string, inHeader bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inHeader {
			w.Header().Set(versionHeader, version)
			fmt.Fprintln(w, "hello")
			return
		}
		fmt.Fprintf(w, "  %s\n", version)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustConfig(t *testing.T, args ...string) *config {
	t.Helper()
	cfg, err := parseArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", args, err)
	}
	return cfg
}

func hostOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func TestRateAndVersions(t *testing.T) {
	for _, keepalive := range []bool{true, false} {
		t.Run(fmt.Sprintf("keepalive=%v", keepalive), func(t *testing.T) {
			a := versionServer(t, "1.2.3", true)
			b := versionServer(t, "2.0.0", false)
			args := []string{"--rate", "400", "--duration", "1.5", a.URL, b.URL + "/"}
			if !keepalive {
				args = append(args, "--no-keepalive")
			}
			s := newProbe(mustConfig(t, args...)).run(nil)
			if s.Sent != 600 || s.OK != 600 || s.Failed != 0 {
				t.Fatalf("sent/ok/failed = %d/%d/%d, want 600/600/0; causes %v", s.Sent, s.OK, s.Failed, s.FailureCauses)
			}
			if s.AchievedRate < 380 || s.AchievedRate > 420 {
				t.Errorf("achieved rate %v, want about 400", s.AchievedRate)
			}
			if s.ElapsedS < 1.4 || s.ElapsedS > 1.6 {
				t.Errorf("elapsed %v s, want about 1.5", s.ElapsedS)
			}
			if got := s.Versions[hostOf(a)]["1.2.3"]; got != 300 {
				t.Errorf("%s served 1.2.3 %d times, want 300 (from the header): %v", hostOf(a), got, s.Versions)
			}
			if got := s.Versions[hostOf(b)]["2.0.0"]; got != 300 {
				t.Errorf("%s served 2.0.0 %d times, want 300 (trimmed body): %v", hostOf(b), got, s.Versions)
			}
			if first, ok := s.VersionSwitch[hostOf(b)]["2.0.0"]; !ok || first > 0.05 {
				t.Errorf("version_switch %v: want 2.0.0 first seen near 0 s on %s", s.VersionSwitch, hostOf(b))
			}
			if len(s.Timeline) != 2 || s.Timeline[0].Sent != 400 || s.Timeline[1].Sent != 200 {
				t.Errorf("timeline sent per second: want [400 200], got %+v", s.Timeline)
			}
			if s.Keepalive != keepalive || s.Stopped != "duration" || s.LatencyMS.P99 == nil {
				t.Errorf("summary %+v", s)
			}
		})
	}
}

func TestServerClosedMidRun(t *testing.T) {
	srv := versionServer(t, "1.0.0", true)
	cfg := mustConfig(t, "--rate", "200", "--duration", "2", srv.URL)
	done := make(chan *summary)
	go func() { done <- newProbe(cfg).run(nil) }()
	time.Sleep(800 * time.Millisecond)
	srv.Close() // listener gone: later requests are refused
	s := <-done

	if s.Sent != 400 || s.OK+s.Failed != s.Sent {
		t.Fatalf("sent %d ok %d failed %d: want 400 sent, all accounted for", s.Sent, s.OK, s.Failed)
	}
	if s.OK < 100 || s.FailureCauses["connection_refused"] < 200 {
		t.Fatalf("ok %d, causes %v: want ok before the close and connection_refused after", s.OK, s.FailureCauses)
	}
	if len(s.Failures) == 0 || len(s.Failures) > maxFailures {
		t.Fatalf("%d failures listed, want 1..%d", len(s.Failures), maxFailures)
	}
	f := s.Failures[0]
	if f.OK || f.Cause == "" || f.Error == "" || f.Target != hostOf(srv) {
		t.Errorf("first failure %+v: want cause, message and target", f)
	}
	for i := 1; i < len(s.Failures); i++ {
		if s.Failures[i].N <= s.Failures[i-1].N {
			t.Fatalf("failures not in request order at %d", i)
		}
	}
	if !strings.Contains(s.Failures[len(s.Failures)-1].Error, "refused") {
		t.Errorf("last listed failure %+v: want connection refused", s.Failures[len(s.Failures)-1])
	}
	last := s.Timeline[len(s.Timeline)-1]
	if last.OK != 0 || last.Failed != last.Sent || last.P99 != nil {
		t.Errorf("last second %+v: want all failed", last)
	}
}

func TestClientOverload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
	}))
	defer srv.Close()
	s := newProbe(mustConfig(t, "--rate", "100", "--duration", "1", "--workers", "5", srv.URL)).run(nil)
	if s.Sent != 100 {
		t.Fatalf("sent %d slots, want all 100 even with workers busy", s.Sent)
	}
	if n := s.FailureCauses["client_overload"]; n < 80 || s.OK < 5 || s.OK+n != 100 {
		t.Fatalf("ok %d, causes %v: want about 5 workers' worth ok and the rest client_overload", s.OK, s.FailureCauses)
	}
	if s.AchievedRate < 95 || s.AchievedRate > 105 {
		t.Errorf("achieved rate %v, want 100: a stall must not lower the rate", s.AchievedRate)
	}
}

func TestHTTPErrorIsFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(versionHeader, "9.9.9")
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound) // never followed, even on loopback
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := newProbe(mustConfig(t, "--max-requests", "4", "--rate", "100", srv.URL, srv.URL+"/moved")).run(nil)
	if s.OK != 0 || s.FailureCauses["http_5xx"] != 2 || s.FailureCauses["http_3xx"] != 2 || s.Stopped != "max_requests" {
		t.Fatalf("summary %+v: want 2 http_5xx, 2 http_3xx (redirect not followed), nothing ok", s)
	}
	if s.Failures[0].Status != 503 || s.Failures[0].Error != "HTTP 503" {
		t.Errorf("failure %+v", s.Failures[0])
	}
}

// A keep-alive connection closed by the server after it read the request but
// before any response byte: net/http retries the GET once; it must be counted.
func TestRetryCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			first := atomic.AddInt32(&accepted, 1) == 1
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for served := 0; ; served++ {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					if first && served == 1 {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Hotswap-Version: 1.0\r\n\r\nok\n")
				}
			}(c)
		}
	}()
	s := newProbe(mustConfig(t, "--max-requests", "3", "--rate", "50", "http://"+ln.Addr().String()+"/")).run(nil)
	if s.OK != 3 || s.Retried != 1 {
		t.Fatalf("ok %d retried %d (causes %v): want 3 ok, 1 retried", s.OK, s.Retried, s.FailureCauses)
	}
}

func TestTargetsRefused(t *testing.T) {
	// Refused by scheme, form or name; nothing here is ever dialled.
	alias := "loopback-alias" // a single-label name, joined in so no URL names it
	for _, bad := range []string{
		"https://127.0.0.1/", "ftp://127.0.0.1/", "127.0.0.1:8080", "http://" + alias + "/",
		"http://127.0.0.1." + alias + "/",
	} {
		var stderr bytes.Buffer
		if rc := run([]string{bad}, nil, io.Discard, &stderr); rc != 2 || !strings.Contains(stderr.String(), "refusing") {
			t.Errorf("%s: rc %d, stderr %q: want 2 and a refusal", bad, rc, stderr.String())
		}
	}
	for _, good := range []string{"http://127.0.0.1:1/", "http://localhost:8080", "http://[::1]:8080/x", "http://127.9.8.7/"} {
		if _, err := checkTarget(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	// Private, unspecified and documentation addresses (as IPs, never as targets) are not loopback.
	for _, ip := range []net.IP{net.IPv4(10, 0, 0, 1), net.IPv4(192, 168, 1, 1), net.IPv4zero, net.IPv6unspecified,
		net.IPv4(192, 0, 2, 1), net.ParseIP("2001:db8::1")} {
		if loopbackHost(ip.String()) {
			t.Errorf("%s taken for a loopback address", ip)
		}
		if err := dialLoopbackOnly("tcp", net.JoinHostPort(ip.String(), "80"), nil); err == nil {
			t.Errorf("the dialer would connect to %s", ip)
		}
	}
	for _, args := range [][]string{
		{"--duration", "601", "http://127.0.0.1/"}, {"--max-requests", "2000001", "http://127.0.0.1/"},
		{"--rate", "0", "http://127.0.0.1/"}, {"--workers", "0", "http://127.0.0.1/"}, {},
	} {
		if rc := run(args, nil, io.Discard, io.Discard); rc != 2 {
			t.Errorf("%q: rc %d, want 2", args, rc)
		}
	}
}

func TestWorkersCoverOneTimeout(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--rate", "220", "--timeout", "10"}, 2200},
		{[]string{"--rate", "50", "--timeout", "5"}, 512},
		{[]string{"--rate", "1000", "--timeout", "10"}, 4096},
		{[]string{"--rate", "1000", "--timeout", "10", "--workers", "64"}, 64},
	} {
		if cfg := mustConfig(t, append(c.args, "http://127.0.0.1:1/")...); cfg.workers != c.want {
			t.Errorf("%q: %d workers, want %d", c.args, cfg.workers, c.want)
		}
	}
}

func TestFlagsAnywhere(t *testing.T) {
	cfg := mustConfig(t, "http://127.0.0.1:1/", "--rate", "1500", "--no-keepalive", "--duration", "3", "--", "http://localhost:2/")
	if len(cfg.targets) != 2 || cfg.rate != 1500 || cfg.keepalive || cfg.maxReq != 4500 {
		t.Fatalf("%+v", cfg)
	}
}

// signalWriter reports the ready line, after which SIGINT is handled.
type signalWriter struct {
	once  sync.Once
	ready chan struct{}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(readyLine)) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(b), nil
}

func TestSIGINTStopsWithSummary(t *testing.T) {
	srv := versionServer(t, "1.0.0", true)
	w := &signalWriter{ready: make(chan struct{})}
	var out bytes.Buffer
	rc := make(chan int)
	go func() { rc <- run([]string{"--rate", "100", "--duration", "30", srv.URL}, nil, &out, w) }()
	<-w.ready
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-rc:
		if code != 0 {
			t.Fatalf("rc %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not stop the probe")
	}
	var s map[string]interface{}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary %q: %v", out.String(), err)
	}
	for _, key := range []string{"sent", "ok", "failed", "elapsed_s", "achieved_rate", "latency_ms", "versions",
		"failure_causes", "failures", "keepalive", "retried", "timeline", "version_switch"} {
		if _, ok := s[key]; !ok {
			t.Errorf("summary lacks %q", key)
		}
	}
	if s["stopped"] != "signal" || s["sent"].(float64) < 30 || s["sent"].(float64) > 80 {
		t.Errorf("stopped %v after %v requests: want signal, about 50", s["stopped"], s["sent"])
	}
}
