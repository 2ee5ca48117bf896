// Command loadprobe sends HTTP GETs at a fixed rate to loopback targets and
// prints, as JSON, what happened to them: which version answered, how fast,
// and why requests failed.
//
//	loadprobe [flags] http://127.0.0.1:PORT/ [more targets...]
//
// It is open-loop: request slots are emitted at --rate whatever the targets
// do, so a stalled target shows up as latency and failures, never as a lower
// rate. Exit status: 0 all requests ok, 1 some failed, 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	maxDuration   = 600 * time.Second
	maxRequests   = 2000000
	maxRate       = 1000000
	maxWorkers    = 4096
	minWorkers    = 512
	maxFailures   = 200
	versionHeader = "X-Hotswap-Version"
	maxVersionLen = 64
	readyLine     = "loadprobe: started"
)

type target struct {
	url  string
	name string // host:port, the key used in the summary
}

type config struct {
	targets    []target
	rate       float64
	duration   time.Duration
	maxReq     int
	keepalive  bool
	timeout    time.Duration
	workers    int
	watchStdin bool
}

// record is one request slot. Only failures are kept whole (the first 200).
type record struct {
	N         int     `json:"n"`
	T         float64 `json:"t"`
	Target    string  `json:"target"`
	LatencyMS float64 `json:"latency_ms"`
	OK        bool    `json:"ok"`
	Status    int     `json:"status"`
	Version   string  `json:"version,omitempty"`
	Cause     string  `json:"cause,omitempty"`
	Error     string  `json:"error,omitempty"`
	Retried   bool    `json:"retried,omitempty"`
}

type latencies struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
	Max *float64 `json:"max"`
}

type second struct {
	T        int            `json:"t"`
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	P99      *float64       `json:"p99_ms"`
	Versions map[string]int `json:"versions"`
	lat      []float32
}

type summary struct {
	Sent          int                           `json:"sent"`
	OK            int                           `json:"ok"`
	Failed        int                           `json:"failed"`
	Retried       int                           `json:"retried"`
	ElapsedS      float64                       `json:"elapsed_s"`
	AchievedRate  float64                       `json:"achieved_rate"`
	Rate          float64                       `json:"rate"`
	Workers       int                           `json:"workers"`
	Keepalive     bool                          `json:"keepalive"`
	Stopped       string                        `json:"stopped"`
	LatencyMS     latencies                     `json:"latency_ms"`
	Versions      map[string]map[string]int     `json:"versions"`
	VersionSwitch map[string]map[string]float64 `json:"version_switch"`
	FailureCauses map[string]int                `json:"failure_causes"`
	Timeline      []*second                     `json:"timeline"`
	Failures      []record                      `json:"failures"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadprobe:", err)
		return 2
	}

	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sigs:
			halt()
		case <-done:
		}
	}()
	if cfg.watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			halt()
		}()
	}
	// Tells a parent process that signals are handled from here on.
	fmt.Fprintln(stderr, readyLine)

	s := newProbe(cfg).run(stop)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		fmt.Fprintln(stderr, "loadprobe: writing the summary:", err)
		return 2
	}
	if s.Failed > 0 {
		return 1
	}
	return 0
}

// workersFor gives room for every request of one timeout in flight: a service that slows down then shows
// as latency, and a request fails only when it errs or times out, not because the probe ran out of slots.
func workersFor(rate, timeoutS float64) int {
	n := math.Ceil(rate * timeoutS)
	if n < minWorkers {
		return minWorkers
	}
	if n > maxWorkers {
		return maxWorkers
	}
	return int(n)
}

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("loadprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rate := fs.Float64("rate", 200, "requests per second over all targets, round-robin")
	duration := fs.Float64("duration", 10, "seconds to send for (max 600)")
	maxReq := fs.Int("max-requests", 0, "stop after this many requests (default rate*duration, max 2000000)")
	noKeepalive := fs.Bool("no-keepalive", false, "a new connection for every request")
	timeout := fs.Float64("timeout", 5, "seconds allowed per request")
	workers := fs.Int("workers", 0, "most requests in flight; a slot finding none free fails as client_overload (max 4096; default rate*timeout, at least 512)")
	watchStdin := fs.Bool("watch-stdin", false, "stop as on SIGINT when stdin reaches EOF, so the probe ends with its parent")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loadprobe [flags] http://127.0.0.1:PORT/PATH ... (loopback targets only)")
		fs.PrintDefaults()
	}

	// Flags may come before, between or after the targets.
	var raw []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if n := len(rest) - len(left); n > 0 && rest[n-1] == "--" {
			raw = append(raw, left...)
			break
		}
		raw = append(raw, left[0])
		rest = left[1:]
	}

	cfg := &config{keepalive: !*noKeepalive, workers: *workers, watchStdin: *watchStdin}
	if len(raw) == 0 {
		return nil, errors.New("no targets given")
	}
	for _, r := range raw {
		t, err := checkTarget(r)
		if err != nil {
			return nil, err
		}
		cfg.targets = append(cfg.targets, t)
	}
	if !(*rate > 0 && *rate <= maxRate) {
		return nil, fmt.Errorf("--rate %v: want more than 0 and at most %d", *rate, maxRate)
	}
	cfg.rate = *rate
	if !(*duration > 0 && *duration <= maxDuration.Seconds()) {
		return nil, fmt.Errorf("--duration %v: want more than 0 and at most %v seconds", *duration, maxDuration.Seconds())
	}
	cfg.duration = time.Duration(*duration * float64(time.Second))
	if !(*timeout > 0 && *timeout <= maxDuration.Seconds()) {
		return nil, fmt.Errorf("--timeout %v: want more than 0 and at most %v seconds", *timeout, maxDuration.Seconds())
	}
	cfg.timeout = time.Duration(*timeout * float64(time.Second))
	workersSet := false
	fs.Visit(func(f *flag.Flag) { workersSet = workersSet || f.Name == "workers" })
	if !workersSet {
		cfg.workers = workersFor(*rate, *timeout)
	} else if *workers < 1 || *workers > maxWorkers {
		return nil, fmt.Errorf("--workers %d: want 1 to %d", *workers, maxWorkers)
	}
	switch {
	case *maxReq < 0 || *maxReq > maxRequests:
		return nil, fmt.Errorf("--max-requests %d: want 1 to %d (0: rate*duration)", *maxReq, maxRequests)
	case *maxReq > 0:
		cfg.maxReq = *maxReq
	default:
		cfg.maxReq = int(math.Min(math.Ceil(*rate**duration), maxRequests))
	}
	return cfg, nil
}

func checkTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("refusing %q: %v", raw, err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("refusing %s: only http:// targets are supported", raw)
	}
	if !loopbackHost(u.Hostname()) {
		return target{}, fmt.Errorf("refusing %s: targets must be loopback addresses (127.0.0.0/8, ::1, localhost)", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return target{url: u.String(), name: u.Host}, nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialLoopbackOnly checks the address actually dialled, so neither a
// resolver answer for "localhost" nor anything else leaves the machine.
func dialLoopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err == nil && loopbackHost(host) {
		return nil
	}
	return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
}

type probe struct {
	cfg    *config
	client *http.Client
	start  time.Time
	sem    chan struct{}
	wg     sync.WaitGroup

	mu        sync.Mutex
	sum       summary
	lastT     float64
	seconds   []*second
	failures  []record
	firstSeen map[string]map[string]float64
}

func newProbe(cfg *config) *probe {
	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second, Control: dialLoopbackOnly}
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		DisableKeepAlives:   !cfg.keepalive,
		DisableCompression:  true,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: cfg.workers,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   cfg.timeout,
		// A redirect is an answer to report, and might point off the machine.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &probe{
		cfg:       cfg,
		client:    client,
		sem:       make(chan struct{}, cfg.workers),
		firstSeen: map[string]map[string]float64{},
		sum: summary{
			Rate:          cfg.rate,
			Workers:       cfg.workers,
			Keepalive:     cfg.keepalive,
			Versions:      map[string]map[string]int{},
			FailureCauses: map[string]int{},
		},
	}
}

// run emits cfg.maxReq slots (at most) at cfg.rate until cfg.duration or
// stop, waits for the requests in flight and returns the summary.
func (p *probe) run(stop <-chan struct{}) *summary {
	p.start = time.Now()
	interval := float64(time.Second) / p.cfg.rate
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	stopped := "duration"
slots:
	for n := 0; ; n++ {
		due := time.Duration(float64(n) * interval)
		if due >= p.cfg.duration {
			break
		}
		if n >= p.cfg.maxReq {
			stopped = "max_requests"
			break
		}
		// A late wake-up is caught up by not waiting for the overdue slots.
		if wait := time.Until(p.start.Add(due)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
				timer.Stop()
				stopped = "signal"
				break slots
			}
		} else {
			select {
			case <-stop:
				stopped = "signal"
				break slots
			default:
			}
		}
		p.dispatch(n)
	}
	p.wg.Wait()
	p.client.CloseIdleConnections()
	return p.finish(stopped)
}

func (p *probe) dispatch(n int) {
	t := p.cfg.targets[n%len(p.cfg.targets)]
	select {
	case p.sem <- struct{}{}:
		p.wg.Add(1)
		go func() {
			defer func() { <-p.sem; p.wg.Done() }()
			p.add(p.request(n, t))
		}()
	default:
		p.add(record{
			N: n, T: time.Since(p.start).Seconds(), Target: t.name, Cause: "client_overload",
			Error: fmt.Sprintf("all %d workers busy: the slot was not sent", p.cfg.workers),
		})
	}
}

func (p *probe) request(n int, t target) record {
	rec := record{N: n, Target: t.name}
	// Go retries an idempotent request once on a fresh connection when a
	// reused one was closed before any response byte; a second GotConn shows it.
	var conns int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { atomic.AddInt32(&conns, 1) }}
	begin := time.Now()
	rec.T = begin.Sub(p.start).Seconds()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, t.url, nil)
	if err != nil {
		rec.Cause, rec.Error = classify(err)
		return rec
	}
	resp, err := p.client.Do(req)
	if err == nil {
		rec.Status = resp.StatusCode
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err == nil {
			// Drained bodies let the connection be reused.
			_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		}
		resp.Body.Close()
		if v := resp.Header.Get(versionHeader); v != "" {
			rec.Version = clip(v, maxVersionLen)
		} else {
			rec.Version = clip(string(body), maxVersionLen)
		}
	}
	rec.LatencyMS = float64(time.Since(begin)) / float64(time.Millisecond)
	rec.Retried = atomic.LoadInt32(&conns) > 1
	switch {
	case err != nil:
		rec.Cause, rec.Error = classify(err)
	case rec.Status < 200 || rec.Status > 299:
		rec.Cause, rec.Error = fmt.Sprintf("http_%dxx", rec.Status/100), fmt.Sprintf("HTTP %d", rec.Status)
	default:
		rec.OK = true
	}
	return rec
}

func classify(err error) (cause, msg string) {
	msg = err.Error()
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled", msg
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused", msg
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "connection_reset", msg
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.Contains(msg, "server closed idle connection"): // net/http keeps this error unexported
		return "eof", msg
	}
	root := err
	for next := errors.Unwrap(root); next != nil; next = errors.Unwrap(root) {
		root = next
	}
	return "other: " + clip(root.Error(), 80), msg
}

// clip trims s and cuts it to at most n bytes of valid UTF-8.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return strings.ToValidUTF8(s, "?")
}

func (p *probe) add(rec record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.sum
	s.Sent++
	if rec.T > p.lastT {
		p.lastT = rec.T
	}
	sec := int(rec.T)
	for len(p.seconds) <= sec {
		p.seconds = append(p.seconds, &second{T: len(p.seconds), Versions: map[string]int{}})
	}
	b := p.seconds[sec]
	b.Sent++
	if rec.Retried {
		s.Retried++
	}
	if rec.OK {
		s.OK++
		b.OK++
		b.lat = append(b.lat, float32(rec.LatencyMS))
		b.Versions[rec.Version]++
		if s.Versions[rec.Target] == nil {
			s.Versions[rec.Target] = map[string]int{}
			p.firstSeen[rec.Target] = map[string]float64{}
		}
		s.Versions[rec.Target][rec.Version]++
		if first, seen := p.firstSeen[rec.Target][rec.Version]; !seen || rec.T < first {
			p.firstSeen[rec.Target][rec.Version] = rec.T
		}
		return
	}
	s.Failed++
	b.Failed++
	s.FailureCauses[rec.Cause]++
	p.failures = append(p.failures, rec)
	// Keeps the failures with the lowest numbers without holding them all.
	if len(p.failures) >= 2*maxFailures {
		p.trimFailures()
	}
}

func (p *probe) trimFailures() {
	sort.Slice(p.failures, func(i, j int) bool { return p.failures[i].N < p.failures[j].N })
	if len(p.failures) > maxFailures {
		p.failures = p.failures[:maxFailures]
	}
}

func (p *probe) finish(stopped string) *summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.sum
	s.Stopped = stopped
	s.ElapsedS = round(p.lastT, 2)
	if s.Sent > 1 && p.lastT > 0 {
		// Slots are emitted at 0 .. lastT: sent-1 intervals.
		s.AchievedRate = round(float64(s.Sent-1)/p.lastT, 1)
	}
	var all []float32
	for _, b := range p.seconds {
		sortFloats(b.lat)
		b.P99 = percentile(b.lat, 0.99)
		all = append(all, b.lat...)
	}
	sortFloats(all)
	s.LatencyMS = latencies{P50: percentile(all, 0.50), P99: percentile(all, 0.99), Max: percentile(all, 1)}
	s.Timeline = p.seconds
	if s.Timeline == nil {
		s.Timeline = []*second{}
	}
	s.VersionSwitch = map[string]map[string]float64{}
	for target, first := range p.firstSeen {
		s.VersionSwitch[target] = map[string]float64{}
		for v, t := range first {
			s.VersionSwitch[target][v] = round(t, 3)
		}
	}
	p.trimFailures()
	s.Failures = make([]record, len(p.failures))
	for i, r := range p.failures {
		r.T = round(r.T, 4)
		r.LatencyMS = round(r.LatencyMS, 2)
		s.Failures[i] = r
	}
	return s
}

func sortFloats(xs []float32) {
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
}

// percentile picks like the Python probe did: xs[min(len-1, int(len*p))].
func percentile(sorted []float32, p float64) *float64 {
	if len(sorted) == 0 {
		return nil
	}
	i := int(float64(len(sorted)) * p)
	if i > len(sorted)-1 {
		i = len(sorted) - 1
	}
	v := round(float64(sorted[i]), 2)
	return &v
}

func round(x float64, places int) float64 {
	f := math.Pow(10, float64(places))
	return math.Round(x*f) / f
}
