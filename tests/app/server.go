package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// maxSlow caps GET /slow?ms=N.
const maxSlow = 10 * time.Second

// service holds what the HTTP handlers report.
type service struct {
	version string // as reported: "<version>-wrong" under the wrong-version fault
	fault   string
	pid     int
	message string                 // $HOTSWAP_MESSAGE at start; set before serving
	delay   time.Duration          // extra latency of every counted request (slow fault); set before serving
	config  atomic.Pointer[config] // nil without --config; swapped by a reload while handlers read it
	stats   requestStats
	metrics requestMetrics
}

func newService(buildVersion, fault string) *service {
	v := buildVersion
	if fault == faultWrongVersion {
		v += "-wrong"
	}
	s := &service{version: v, fault: fault, pid: os.Getpid()}
	if fault == faultSlow {
		s.delay = defaultFaultDelay // run() applies HOTSWAP_FAULT_DELAY_MS
	}
	return s
}

// setConfig makes cfg the config served from now on.
func (s *service) setConfig(cfg config) { s.config.Store(&cfg) }

// greeting is the greeting of the current config, "" without one.
func (s *service) greeting() string {
	if c := s.config.Load(); c != nil {
		return c.Greeting
	}
	return ""
}

// handler serves /healthz, /stats, /metrics, /slow, /fail and /. Every response carries
// X-Hotswap-Version and X-Hotswap-Pid, handy to see which process answered.
// Responses other than /healthz, /stats and /metrics are counted for /stats and /metrics.
// Under the slow fault those counted requests wait s.delay first (inside the
// measured time, so the latency histogram shows it); probes are never delayed.
func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/stats", s.statsHandler)
	mux.HandleFunc("/metrics", s.metricsHandler)
	mux.HandleFunc("/slow", s.slow)
	mux.HandleFunc("/fail", s.fail)
	mux.HandleFunc("/", s.root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Hotswap-Version", s.version)
		w.Header().Set("X-Hotswap-Pid", strconv.Itoa(s.pid))
		if !counted(r.URL.Path) {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		started := time.Now()
		if s.delay > 0 && !sleep(r.Context(), s.delay) {
			return // the client went away during the delay: nothing served, nothing counted
		}
		mux.ServeHTTP(rec, r)
		s.stats.record(rec.statusCode())
		s.metrics.observe(rec.statusCode(), time.Since(started))
	})
}

// counted tells whether a request is user traffic. Probes are not: an analysis
// that reads /stats, or a health check, must not move the numbers it measures.
func counted(path string) bool {
	return path != "/healthz" && path != "/stats" && path != "/metrics"
}

// requestStats counts the responses served since the process started.
type requestStats struct {
	requests atomic.Int64
	errors   atomic.Int64 // 5xx responses
}

func (c *requestStats) record(status int) {
	c.requests.Add(1)
	if status >= 500 {
		c.errors.Add(1)
	}
}

type statsReply struct {
	Version   string  `json:"version"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
}

func (c *requestStats) snapshot(version string) statsReply {
	// errors first: a response counted in between can only lower the rate, never push it above 1.
	errs := c.errors.Load()
	reqs := c.requests.Load()
	rate := 0.0
	if reqs > 0 {
		rate = float64(errs) / float64(reqs)
	}
	return statsReply{Version: version, Requests: reqs, Errors: errs, ErrorRate: rate}
}

// statusRecorder remembers the status code a handler sent.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// statusCode is what the client got: 200 when the handler wrote nothing.
func (r *statusRecorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (s *service) statsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(s.stats.snapshot(s.version))
}

// health is the /healthz reply. Only these fields, in this order: probes
// match on the prefix, and no environment variable but HOTSWAP_MESSAGE may
// ever show here (the environment also holds secrets).
type health struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	PID      int    `json:"pid"`
	Greeting string `json:"greeting,omitempty"`
	Message  string `json:"message,omitempty"`
}

func (s *service) healthz(w http.ResponseWriter, r *http.Request) {
	h := health{Status: "ok", Version: s.version, PID: s.pid, Greeting: s.greeting(), Message: s.message}
	code := http.StatusOK
	switch s.fault {
	case faultUnhealthy:
		h.Status, code = "unhealthy", http.StatusServiceUnavailable
	case faultNeverReady:
		h.Status, code = "starting", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}

func (s *service) root(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	s.answer(w)
}

// fail answers 503 on every release: a dependency that is down for the whole
// fleet (an incident no release causes), counted like any request.
func (s *service) fail(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "dependency unavailable", http.StatusServiceUnavailable)
}

// answer writes what / and /slow reply: the version, or a 500 under the errors
// fault (a release that passes its health checks but fails its users).
func (s *service) answer(w http.ResponseWriter) {
	if s.fault == faultErrors {
		http.Error(w, "injected error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, s.version)
}

// slowDuration parses the ms parameter of /slow: a non-negative integer,
// capped at maxSlow.
func slowDuration(ms string) (time.Duration, error) {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("ms must be a non-negative integer, got %q", ms)
	}
	if n > maxSlow.Milliseconds() {
		return maxSlow, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}

func (s *service) slow(w http.ResponseWriter, r *http.Request) {
	d, err := slowDuration(r.URL.Query().Get("ms"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !sleep(r.Context(), d) { // client went away
		return
	}
	w.Header().Set("X-Slept-Ms", strconv.FormatInt(d.Milliseconds(), 10))
	s.answer(w)
}

// sleep waits for d, or less if ctx ends first (the client went away, or the
// server closed the connection); it tells whether the whole d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
