package main

// In-process tests: handlers on a real 127.0.0.1 listener, faults, sd_notify,
// PID file, listener selection. Tests that run the built binary (signals,
// inherited listeners, upgrades, draining) are in process_linux_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve runs s on a fresh 127.0.0.1 ephemeral port and returns its base URL.
func serve(t *testing.T, s *service) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func decodeHealth(t *testing.T, body string) health {
	t.Helper()
	var h health
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("healthz body %q: %v", body, err)
	}
	return h
}

func TestHealthzAndRoot(t *testing.T) {
	base := serve(t, newService("1.2.3", ""))

	code, body, hdr := get(t, base+"/healthz")
	if code != 200 {
		t.Fatalf("/healthz status %d, want 200", code)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/healthz Content-Type %q", ct)
	}
	want := health{Status: "ok", Version: "1.2.3", PID: os.Getpid()}
	if h := decodeHealth(t, body); h != want {
		t.Errorf("/healthz = %+v, want %+v", h, want)
	}
	if !strings.HasPrefix(body, `{"status":"ok","version":"1.2.3","pid":`) {
		t.Errorf("/healthz key order: %s", body)
	}

	code, body, hdr = get(t, base+"/")
	if code != 200 || body != "1.2.3\n" {
		t.Errorf("/ = %d %q, want 200 %q", code, body, "1.2.3\n")
	}
	if hdr.Get("X-Hotswap-Version") != "1.2.3" || hdr.Get("X-Hotswap-Pid") != fmt.Sprint(os.Getpid()) {
		t.Errorf("/ headers: %v", hdr)
	}

	if code, _, _ = get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope status %d, want 404", code)
	}
}

func TestFaultResponses(t *testing.T) {
	for _, tc := range []struct {
		fault, status, version string
		code                   int
		rootCode               int
		rootBody               string
	}{
		{"", "ok", "2.0.0", 200, 200, "2.0.0\n"},
		{faultUnhealthy, "unhealthy", "2.0.0", 503, 200, "2.0.0\n"},
		{faultNeverReady, "starting", "2.0.0", 503, 200, "2.0.0\n"},
		{faultWrongVersion, "ok", "2.0.0-wrong", 200, 200, "2.0.0-wrong\n"},
		{faultErrors, "ok", "2.0.0", 200, 500, "injected error\n"},
		{faultExitOnTerm, "ok", "2.0.0", 200, 200, "2.0.0\n"},
		{faultSlow, "ok", "2.0.0", 200, 200, "2.0.0\n"},
	} {
		t.Run("fault="+tc.fault, func(t *testing.T) {
			base := serve(t, newService("2.0.0", tc.fault))
			code, body, _ := get(t, base+"/healthz")
			h := decodeHealth(t, body)
			if code != tc.code || h.Status != tc.status || h.Version != tc.version {
				t.Errorf("/healthz = %d %+v, want %d status=%s version=%s", code, h, tc.code, tc.status, tc.version)
			}
			if code, body, _ = get(t, base+"/"); code != tc.rootCode || body != tc.rootBody {
				t.Errorf("/ = %d %q, want %d %q", code, body, tc.rootCode, tc.rootBody)
			}
			if code, body, _ = get(t, base+"/slow?ms=1"); code != tc.rootCode || body != tc.rootBody {
				t.Errorf("/slow = %d %q, want %d %q", code, body, tc.rootCode, tc.rootBody)
			}
		})
	}
}

func TestActiveFault(t *testing.T) {
	for _, f := range []string{"", faultExitAtStart, faultNeverReady, faultUnhealthy, faultWrongVersion, faultErrors, faultExitOnTerm, faultSlow} {
		t.Setenv("HOTSWAP_FAULT", f)
		if got, err := activeFault(); err != nil || got != f {
			t.Errorf("HOTSWAP_FAULT=%q: %q, %v", f, got, err)
		}
	}
	t.Setenv("HOTSWAP_FAULT", "bogus")
	if _, err := activeFault(); err == nil || !strings.Contains(err.Error(), faultExitOnTerm) || !strings.Contains(err.Error(), faultSlow) {
		t.Errorf("HOTSWAP_FAULT=bogus: %v, want an error listing the known faults", err)
	}
}

// TestExitOnTermFault: SIGTERM ends the process at once, exit 0, while a
// request is still in flight: no drain, no STOPPING=1, the PID file stays.
func TestExitOnTermFault(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	notify := notifyListener(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)

	svc := newService("1.0.0", faultExitOnTerm)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: svc.handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	if err := writePIDFile(pidFile, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	a := &app{svc: svc, srv: srv, ln: ln, pidFile: pidFile, drainTimeout: 10 * time.Second, ready: true}

	slow := make(chan struct{})
	go func() {
		c := &http.Client{Timeout: 15 * time.Second}
		if resp, err := c.Get("http://" + ln.Addr().String() + "/slow?ms=2000"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		close(slow)
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight

	exitCode := -1
	exitNow = func(code int) { exitCode = code }
	t.Cleanup(func() { exitNow = os.Exit })
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	start := time.Now()
	ret := a.loop(sigs, make(chan error))
	took := time.Since(start)

	if exitCode != 0 || ret != 0 {
		t.Errorf("exit(%d), loop returned %d; want exit(0)", exitCode, ret)
	}
	if took > 500*time.Millisecond {
		t.Errorf("took %s after SIGTERM: drained instead of exiting at once", took)
	}
	select {
	case <-slow:
		t.Error("the in-flight request finished before the exit: it was drained")
	default:
	}
	if pid, err := readPIDFile(pidFile); err != nil || pid != os.Getpid() {
		t.Error("PID file removed: a graceful stop, not an immediate exit")
	}
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := notify.ReadFrom(make([]byte, 256)); err == nil {
		t.Errorf("sent a notification (%d bytes) on SIGTERM, want none", n)
	}
}

// stats GETs /stats and decodes it strictly.
func stats(t *testing.T, base string) statsReply {
	t.Helper()
	code, body, hdr := get(t, base+"/stats")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/stats = %d %q (Content-Type %q)", code, body, hdr.Get("Content-Type"))
	}
	var st statsReply
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("/stats body %q: %v", body, err)
	}
	return st
}

func TestStatsCountsServedResponses(t *testing.T) {
	base := serve(t, newService("1.2.3", ""))
	_, body, _ := get(t, base+"/stats")
	if body != `{"version":"1.2.3","requests":0,"errors":0,"error_rate":0}`+"\n" {
		t.Errorf("fresh /stats = %q", body)
	}
	for _, path := range []string{"/", "/", "/slow?ms=1", "/nope", "/slow?ms=abc", "/healthz", "/stats", "/healthz"} {
		get(t, base+path)
	}
	// 200, 200, 200, 404, 400 are counted; /healthz and /stats are not. None is a 5xx.
	if st, want := stats(t, base), (statsReply{"1.2.3", 5, 0, 0}); st != want {
		t.Errorf("/stats = %+v, want %+v", st, want)
	}
}

func TestStatsCountErrorsFault(t *testing.T) {
	base := serve(t, newService("2.0.0", faultErrors))
	for _, path := range []string{"/", "/", "/nope", "/healthz"} {
		get(t, base+path)
	}
	st := stats(t, base)
	if st.Version != "2.0.0" || st.Requests != 3 || st.Errors != 2 || st.ErrorRate != 2.0/3.0 {
		t.Errorf("/stats = %+v, want 3 requests, 2 errors, rate 2/3", st)
	}
}

func TestStatsUnderConcurrency(t *testing.T) {
	base := serve(t, newService("1.0.0", ""))
	const workers, each = 8, 25
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		go func() {
			c := &http.Client{Timeout: 15 * time.Second}
			for j := 0; j < each; j++ {
				resp, err := c.Get(base + "/")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- nil
		}()
	}
	for i := 0; i < workers; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := stats(t, base); st.Requests != workers*each || st.Errors != 0 {
		t.Errorf("/stats = %+v, want %d requests", st, workers*each)
	}
}

func TestRequestStats(t *testing.T) {
	var c requestStats
	for _, status := range []int{200, 201, 301, 404, 499, 500, 502, 503} {
		c.record(status)
	}
	if st := c.snapshot("v"); st.Requests != 8 || st.Errors != 3 || st.ErrorRate != 3.0/8.0 {
		t.Errorf("snapshot = %+v", st)
	}
	// A handler that wrote nothing sent a 200; the first status written is the one sent.
	if code := (&statusRecorder{}).statusCode(); code != 200 {
		t.Errorf("empty recorder: status %d", code)
	}
}

// notifyListener listens on a unixgram socket as systemd would.
func notifyListener(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestSdNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("unset NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := sdNotify("READY=1"); err == nil {
		t.Error("relative NOTIFY_SOCKET accepted")
	}

	names := []string{filepath.Join(t.TempDir(), "notify.sock")}
	if runtime.GOOS == "linux" {
		names = append(names, fmt.Sprintf("@hotswapdemo-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	}
	for _, name := range names {
		c := notifyListener(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		if err := sdNotify("MAINPID=42\nREADY=1"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := readDatagram(t, c); got != "MAINPID=42\nREADY=1" {
			t.Errorf("%s: got %q", name, got)
		}
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	for _, pid := range []int{1234, 5678} {
		if err := writePIDFile(path, pid); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if string(b) != fmt.Sprintf("%d\n", pid) {
			t.Errorf("pid file holds %q, want %d", b, pid)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("pid file mode %v", st.Mode())
	}
	removePIDFileIfOurs(path, 1234) // names 5678 now: must stay
	if _, err := os.Stat(path); err != nil {
		t.Errorf("pid file of another process removed: %v", err)
	}
	removePIDFileIfOurs(path, 5678)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("own pid file not removed: %v", err)
	}
	if err := writePIDFile(filepath.Join(dir, "missing", "app.pid"), 1); err == nil {
		t.Error("pid file in a missing directory: no error")
	}
}

func TestGetListener(t *testing.T) {
	t.Setenv("LISTEN_PID", "1") // not us: must be ignored
	t.Setenv("LISTEN_FDS", "1")
	ln, source, err := getListener("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if source != "bound" {
		t.Errorf("source %q", source)
	}
	if os.Getenv("LISTEN_FDS") != "" || os.Getenv("LISTEN_PID") != "" {
		t.Error("LISTEN_* left in the environment")
	}
	// Without SO_REUSEPORT the port cannot be bound twice.
	if ln2, _, err := getListener(ln.Addr().String(), false); err == nil {
		ln2.Close()
		t.Error("second bind without SO_REUSEPORT succeeded")
	}

	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		return
	}
	a, _, err := getListener("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, source, err := getListener(a.Addr().String(), true)
	if err != nil {
		t.Fatalf("second SO_REUSEPORT bind: %v", err)
	}
	defer b.Close()
	if source != "bound with SO_REUSEPORT" {
		t.Errorf("source %q", source)
	}
}

func TestResolveExecPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix paths")
	}
	if got := resolveExecPath("/opt/app/current/app"); got != "/opt/app/current/app" {
		t.Errorf("absolute path changed: %q", got)
	}
	wd, _ := os.Getwd()
	if got := resolveExecPath("current/app"); got != filepath.Join(wd, "current/app") {
		t.Errorf("relative path: %q", got)
	}
	// Through a symlink: must keep the link, not the target, so that a switch is seen.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "releases", "1"), 0o755)
	os.Symlink("releases/1", filepath.Join(dir, "current"))
	if got := resolveExecPath(filepath.Join(dir, "current", "app")); got != filepath.Join(dir, "current", "app") {
		t.Errorf("symlinked path resolved: %q", got)
	}
}

func TestChildEnv(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDNAMES", "x")
	t.Setenv(envReadyFD, "9")
	t.Setenv("HOTSWAP_KEEP", "yes")
	env := strings.Join(childEnv(), "\n") + "\n"
	for _, want := range []string{"LISTEN_FDS=1\n", "HOTSWAP_INHERIT_FD=3\n", "HOTSWAP_READY_FD=4\n", "HOTSWAP_KEEP=yes\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("child env lacks %q", want)
		}
	}
	for _, bad := range []string{"LISTEN_PID=", "LISTEN_FDNAMES=", "HOTSWAP_READY_FD=9"} {
		if strings.Contains(env, bad) {
			t.Errorf("child env has %q", bad)
		}
	}
}

func TestMetricsInPrometheusTextFormat(t *testing.T) {
	base := serve(t, newService("1.2.3", ""))
	for _, path := range []string{"/", "/", "/slow?ms=30", "/nope", "/fail", "/healthz", "/stats", "/metrics"} {
		get(t, base+path)
	}
	code, body, hdr := get(t, base+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics = %d %q", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`hotswap_build_info{version="1.2.3"} 1`,
		`hotswap_http_requests_total{code="200",version="1.2.3"} 3`,
		`hotswap_http_requests_total{code="404",version="1.2.3"} 1`,
		`hotswap_http_requests_total{code="503",version="1.2.3"} 1`,
		`hotswap_http_request_duration_seconds_bucket{version="1.2.3",le="+Inf"} 5`,
		`hotswap_http_request_duration_seconds_count{version="1.2.3"} 5`,
		"# TYPE hotswap_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// Cumulative buckets: the 30 ms request is above 25 ms, so le=0.025 has at most 4 and le=0.05 all 5.
	if !strings.Contains(body, `le="0.05"} 5`+"\n") || strings.Contains(body, `le="0.025"} 5`+"\n") {
		t.Errorf("histogram buckets:\n%s", body)
	}
}

func TestMetricsLabelValuesAreEscaped(t *testing.T) {
	var m requestMetrics
	m.observe(200, time.Millisecond)
	out := m.render("1.0\"x\\y\n")
	if !strings.Contains(out, `hotswap_build_info{version="1.0\"x\\y\n"} 1`) {
		t.Errorf("escaping:\n%s", out)
	}
	if empty := (&requestMetrics{}).render("1"); !strings.Contains(empty, `le="+Inf"} 0`) {
		t.Errorf("empty metrics:\n%s", empty)
	}
}

// timedGet is get, and how long the request took.
func timedGet(t *testing.T, url string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	code, body, _ := get(t, url)
	return code, body, time.Since(start)
}

// TestSlowFault: a slow release is healthy (/healthz 200 "ok" with the right
// version, at once, as are /stats and /metrics), but every counted request
// waits the delay first, several at a time, and the histogram shows it.
func TestSlowFault(t *testing.T) {
	svc := newService("2.0.0", faultSlow)
	if svc.delay != defaultFaultDelay || defaultFaultDelay != 300*time.Millisecond {
		t.Fatalf("slow service delay %s, want the default 300ms", svc.delay)
	}
	delay := svc.delay
	base := serve(t, svc)

	// Probes answer at once, even while a delayed request is in flight.
	inFlight := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		if resp, err := http.Get(base + "/"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		inFlight <- time.Since(start)
	}()
	time.Sleep(20 * time.Millisecond)
	for _, path := range []string{"/healthz", "/metrics", "/stats"} {
		code, body, took := timedGet(t, base+path)
		if code != 200 || took >= delay {
			t.Errorf("%s = %d after %s, want 200 without the %s delay", path, code, took, delay)
		}
		if path == "/healthz" {
			if h := decodeHealth(t, body); h.Status != "ok" || h.Version != "2.0.0" {
				t.Errorf("/healthz = %+v, want ok 2.0.0", h)
			}
		}
	}
	if took := <-inFlight; took < delay {
		t.Errorf("/ answered after %s, want >= %s", took, delay)
	}

	// User traffic waits the delay, /slow on top of its own sleep; the answers are right.
	for _, tc := range []struct {
		path    string
		code    int
		body    string
		atLeast time.Duration
	}{
		{"/", 200, "2.0.0\n", delay},
		{"/slow?ms=100", 200, "2.0.0\n", delay + 100*time.Millisecond},
		{"/nope", 404, "404 page not found\n", delay},
	} {
		if code, body, took := timedGet(t, base+tc.path); code != tc.code || body != tc.body || took < tc.atLeast {
			t.Errorf("%s = %d %q after %s, want %d %q after >= %s", tc.path, code, body, took, tc.code, tc.body, tc.atLeast)
		}
	}

	// Delayed requests do not wait for one another.
	const parallel = 4
	start := time.Now()
	done := make(chan error, parallel)
	for i := 0; i < parallel; i++ {
		go func() {
			resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(base + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
	}
	for i := 0; i < parallel; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took >= parallel*delay {
		t.Errorf("%d concurrent requests took %s: served one after the other", parallel, took)
	}

	// 1 + 3 + 4 counted requests, each >= 300 ms: all in the (0.25, 0.5] bucket
	// (none slower than 0.5 s barring a very loaded machine), so the p99 is in it too.
	_, body, _ := get(t, base+"/metrics")
	if !strings.Contains(body, `hotswap_http_request_duration_seconds_bucket{version="2.0.0",le="0.25"} 0`+"\n") ||
		!strings.Contains(body, `hotswap_http_request_duration_seconds_count{version="2.0.0"} 8`+"\n") {
		t.Errorf("histogram:\n%s", body)
	}
	if q := histogramQuantile(t, 0.99, body); q < 0.25 {
		t.Errorf("p99 latency %g s, want >= 0.25 (the delay is %s)\n%s", q, delay, body)
	}
	if st := stats(t, base); st.Requests != 8 || st.Errors != 0 {
		t.Errorf("/stats = %+v, want 8 requests, no error", st)
	}
}

// histogramQuantile computes what Prometheus' histogram_quantile(q, ...) gives
// for the hotswap_http_request_duration_seconds buckets of a /metrics body:
// linear interpolation inside the bucket that holds the q-th observation.
func histogramQuantile(t *testing.T, q float64, metrics string) float64 {
	t.Helper()
	type bucket struct{ le, count float64 }
	var bs []bucket
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "hotswap_http_request_duration_seconds_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line, `"} `)
		if i < 0 || j < i {
			t.Fatalf("bucket line %q", line)
		}
		le, err1 := strconv.ParseFloat(line[i+4:j], 64) // "+Inf" parses as +Inf
		n, err2 := strconv.ParseFloat(line[j+3:], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bucket line %q", line)
		}
		bs = append(bs, bucket{le, n})
	}
	sort.Slice(bs, func(a, b int) bool { return bs[a].le < bs[b].le })
	if len(bs) < 2 || bs[len(bs)-1].count == 0 {
		t.Fatalf("no observations:\n%s", metrics)
	}
	rank := q * bs[len(bs)-1].count
	for i, b := range bs {
		if b.count < rank {
			continue
		}
		if i == len(bs)-1 { // in +Inf: Prometheus answers the highest finite bound
			return bs[i-1].le
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = bs[i-1].le, bs[i-1].count
		}
		return lo + (b.le-lo)*(rank-below)/(b.count-below)
	}
	return bs[len(bs)-1].le
}

// TestSlowFaultDelayFromEnv: HOTSWAP_FAULT_DELAY_MS sets the delay, whole
// milliseconds from 0 to 10000; unset or empty means the default.
func TestSlowFaultDelayFromEnv(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"":      defaultFaultDelay,
		"50":    50 * time.Millisecond,
		"0":     0,
		"0300":  300 * time.Millisecond,
		"10000": 10 * time.Second,
	} {
		t.Setenv("HOTSWAP_FAULT_DELAY_MS", v)
		if got, err := faultDelay(); err != nil || got != want {
			t.Errorf("HOTSWAP_FAULT_DELAY_MS=%q: %s, %v; want %s", v, got, err, want)
		}
	}
	for _, v := range []string{"abc", "-5", "+5", "1.5", "300ms", " 50", "10001", "99999999999999999999999"} {
		t.Setenv("HOTSWAP_FAULT_DELAY_MS", v)
		if _, err := faultDelay(); err == nil || !strings.Contains(err.Error(), "HOTSWAP_FAULT_DELAY_MS="+strconv.Quote(v)) ||
			!strings.Contains(err.Error(), "whole number of milliseconds") {
			t.Errorf("HOTSWAP_FAULT_DELAY_MS=%q: %v, want an error naming the variable and the value", v, err)
		}
	}

	// 50 ms instead of 300: the override is what the service waits.
	t.Setenv("HOTSWAP_FAULT_DELAY_MS", "50")
	d, err := faultDelay()
	if err != nil {
		t.Fatal(err)
	}
	svc := newService("2.0.0", faultSlow)
	svc.delay = d // as run() does
	base := serve(t, svc)
	if code, body, took := timedGet(t, base+"/"); code != 200 || body != "2.0.0\n" || took < 50*time.Millisecond || took >= defaultFaultDelay {
		t.Errorf("/ = %d %q after %s, want 200 after 50ms (not the default %s)", code, body, took, defaultFaultDelay)
	}
}

// TestSlowFaultBadDelayFailsStart: run() refuses a bad HOTSWAP_FAULT_DELAY_MS
// under the slow fault, exit 2 before listening, and says why; other builds
// ignore the variable.
func TestSlowFaultBadDelayFailsStart(t *testing.T) {
	var logs bytes.Buffer
	log.SetOutput(&logs)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	t.Setenv("HOTSWAP_FAULT", faultSlow)
	t.Setenv("HOTSWAP_FAULT_DELAY_MS", "300ms")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ret := make(chan int, 1)
	go func() { ret <- run([]string{"hotswapdemo", "--listen", addr}, io.Discard, io.Discard) }()
	select {
	case code := <-ret:
		if code != 2 {
			t.Errorf("run returned %d, want 2", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run still running: the bad HOTSWAP_FAULT_DELAY_MS was accepted")
	}
	if want := `fault slow: HOTSWAP_FAULT_DELAY_MS="300ms": want a whole number of milliseconds from 0 to 10000`; !strings.Contains(logs.String(), want) {
		t.Errorf("log %q lacks %q", logs.String(), want)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("something listens after the refused start")
	}

	// Not read at all by a build without the slow fault.
	if svc := newService("1.0.0", ""); svc.delay != 0 {
		t.Errorf("delay %s without the slow fault", svc.delay)
	}
}

// TestSlowFaultStopsWhenTheClientGoes: a request whose client goes away
// during the delay ends then, is not served and is not counted.
func TestSlowFaultStopsWhenTheClientGoes(t *testing.T) {
	svc := newService("2.0.0", faultSlow)
	svc.delay = 5 * time.Second
	h := svc.handler()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	returned := make(chan time.Duration, 1)
	start := time.Now()
	go func() { h.ServeHTTP(rec, req); returned <- time.Since(start) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case took := <-returned:
		if took >= svc.delay {
			t.Errorf("returned after %s: waited the whole delay", took)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("still waiting 3s after the client went away")
	}
	if rec.Body.Len() != 0 {
		t.Errorf("answered %q to a client that left", rec.Body.String())
	}
	if st := svc.stats.snapshot(svc.version); st.Requests != 0 {
		t.Errorf("/stats = %+v: counted a request never served", st)
	}
	if m := svc.metrics.render(svc.version); !strings.Contains(m, `hotswap_http_request_duration_seconds_count{version="2.0.0"} 0`+"\n") {
		t.Errorf("metrics count a request never served:\n%s", m)
	}
}
