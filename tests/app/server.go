package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// maxSlow caps GET /slow?ms=N.
const maxSlow = 10 * time.Second

// service holds what the HTTP handlers report.
type service struct {
	version string // as reported: "<version>-wrong" under the wrong-version fault
	fault   string
	pid     int
}

func newService(buildVersion, fault string) *service {
	v := buildVersion
	if fault == faultWrongVersion {
		v += "-wrong"
	}
	return &service{version: v, fault: fault, pid: os.Getpid()}
}

// handler serves /healthz, /slow and /. Every response carries
// X-Hotswap-Version and X-Hotswap-Pid, handy to see which process answered.
func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/slow", s.slow)
	mux.HandleFunc("/", s.root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Hotswap-Version", s.version)
		w.Header().Set("X-Hotswap-Pid", strconv.Itoa(s.pid))
		mux.ServeHTTP(w, r)
	})
}

type health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
}

func (s *service) healthz(w http.ResponseWriter, r *http.Request) {
	h, code := health{Status: "ok", Version: s.version, PID: s.pid}, http.StatusOK
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
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done(): // client went away
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Slept-Ms", strconv.FormatInt(d.Milliseconds(), 10))
	fmt.Fprintln(w, s.version)
}
