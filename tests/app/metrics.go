package main

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the request latency histogram.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// requestMetrics is what GET /metrics reports in Prometheus' text format: counted
// responses by status code, and their latency as a histogram. Like /stats it
// counts user traffic only (not /healthz, /stats or /metrics).
type requestMetrics struct {
	mu      sync.Mutex
	byCode  map[int]int64
	buckets []int64 // per bucket, not cumulative; the last one is +Inf
	sum     float64
	count   int64
}

func (m *requestMetrics) observe(status int, took time.Duration) {
	secs := took.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, secs) // the first bound >= secs; len() for +Inf
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byCode == nil {
		m.byCode = map[int]int64{}
		m.buckets = make([]int64, len(latencyBuckets)+1)
	}
	m.byCode[status]++
	m.buckets[i]++
	m.sum += secs
	m.count++
}

// labelValue escapes a Prometheus label value (backslash, double quote, newline).
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// render writes the metrics of a process serving `version`.
func (m *requestMetrics) render(version string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := labelValue(version)
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP hotswap_build_info The version this process serves.\n# TYPE hotswap_build_info gauge\n")
	fmt.Fprintf(&b, "hotswap_build_info{version=\"%s\"} 1\n", v)
	fmt.Fprintf(&b, "# HELP hotswap_http_requests_total Responses served, by status code.\n")
	fmt.Fprintf(&b, "# TYPE hotswap_http_requests_total counter\n")
	codes := make([]int, 0, len(m.byCode))
	for c := range m.byCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "hotswap_http_requests_total{code=\"%d\",version=\"%s\"} %d\n", c, v, m.byCode[c])
	}
	fmt.Fprintf(&b, "# HELP hotswap_http_request_duration_seconds Time to serve a response.\n")
	fmt.Fprintf(&b, "# TYPE hotswap_http_request_duration_seconds histogram\n")
	var cum int64
	for i, le := range latencyBuckets {
		if m.buckets != nil {
			cum += m.buckets[i]
		}
		fmt.Fprintf(&b, "hotswap_http_request_duration_seconds_bucket{version=\"%s\",le=\"%s\"} %d\n", v, formatFloat(le), cum)
	}
	fmt.Fprintf(&b, "hotswap_http_request_duration_seconds_bucket{version=\"%s\",le=\"+Inf\"} %d\n", v, m.count)
	fmt.Fprintf(&b, "hotswap_http_request_duration_seconds_sum{version=\"%s\"} %s\n", v, formatFloat(m.sum))
	fmt.Fprintf(&b, "hotswap_http_request_duration_seconds_count{version=\"%s\"} %d\n", v, m.count)
	return b.String()
}

func (s *service) metricsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprint(w, s.metrics.render(s.version))
}
