// Package telemetry gives each Ferry process its Prometheus registry and the
// three operational endpoints: /metrics (Prometheus text), /healthz (the
// process is alive) and /readyz (the process can do its work: every
// registered check passes within a short timeout).
//
// A Registry is per process, never global: New makes one with the Go and
// process collectors. Labelled metrics take their label values from
// declared sets (Label): a value outside the set is recorded as Other, so a
// job ID, a table name, a query or anything an agent sends can never become
// a label value, and a metric's series stay bounded whatever the input.
//
// Nothing these endpoints serve carries a row value or a secret: metrics
// are counts, sizes, durations and bounded labels; /readyz names its checks
// and whether they passed, never an error's text (that goes to the log).
package telemetry

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths of the operational endpoints.
const (
	PathMetrics = "/metrics"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// Other is the label value recorded for a value outside its label's set.
const Other = "other"

// maxOpenValues bounds the distinct values of a label declared without a
// value set (Label.Values nil); later values are recorded as Other.
const maxOpenValues = 64

// DefaultCheckTimeout bounds each readiness check.
const DefaultCheckTimeout = 2 * time.Second

// Check reports whether one thing a process needs is working. It must
// return within ctx's deadline.
type Check func(ctx context.Context) error

// Options configure a Registry.
type Options struct {
	// Logger receives failed readiness checks and metric collection
	// errors; nil discards them.
	Logger *slog.Logger
	// CheckTimeout bounds each readiness check (DefaultCheckTimeout if
	// zero).
	CheckTimeout time.Duration
}

// Registry is one process's metrics and readiness checks.
type Registry struct {
	reg  *prometheus.Registry
	log  *slog.Logger
	wait time.Duration

	mu     sync.Mutex
	checks []namedCheck
}

type namedCheck struct {
	name string
	fn   Check
}

// New returns a registry holding the Go runtime and process collectors.
// opts may be nil.
func New(opts *Options) *Registry {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg, log: o.Logger, wait: o.CheckTimeout}
}

// Registerer returns the registry to register further collectors with.
func (r *Registry) Registerer() prometheus.Registerer { return r.reg }

// Gatherer returns the registry to read the metrics from (tests).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Counter registers and returns a counter without labels.
func (r *Registry) Counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	r.reg.MustRegister(c)
	return c
}

// Gauge registers and returns a gauge without labels.
func (r *Registry) Gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	r.reg.MustRegister(g)
	return g
}

// GaugeFunc registers a gauge whose value f computes at each scrape.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Label is a label and the values it may take. A value outside Values is
// recorded as Other. A label with nil Values takes values the code itself
// chooses (a route pattern, a status code) — never input — and keeps the
// first 64 distinct ones, recording later ones as Other.
type Label struct {
	Name   string
	Values []string
}

// labels maps label values into their declared sets.
type labels struct {
	defs    []Label
	allowed []map[string]bool

	mu   sync.Mutex
	open []map[string]bool // seen values of labels with nil Values
}

func newLabels(defs []Label) *labels {
	l := &labels{defs: defs, allowed: make([]map[string]bool, len(defs)), open: make([]map[string]bool, len(defs))}
	for i, d := range defs {
		if d.Values == nil {
			l.open[i] = map[string]bool{}
			continue
		}
		l.allowed[i] = map[string]bool{Other: true}
		for _, v := range d.Values {
			l.allowed[i][v] = true
		}
	}
	return l
}

func (l *labels) names() []string {
	out := make([]string, len(l.defs))
	for i, d := range l.defs {
		out[i] = d.Name
	}
	return out
}

// bound returns values with each one outside its label's set replaced by
// Other. It panics when the number of values is not the number of labels
// (a programming error, as in prometheus).
func (l *labels) bound(values []string) []string {
	if len(values) != len(l.defs) {
		panic(fmt.Sprintf("telemetry: %d label values for labels %v", len(values), l.names()))
	}
	out := make([]string, len(values))
	for i, v := range values {
		switch {
		case l.allowed[i] != nil:
			if !l.allowed[i][v] {
				v = Other
			}
		default:
			l.mu.Lock()
			if !l.open[i][v] {
				if len(l.open[i]) >= maxOpenValues {
					v = Other
				} else {
					l.open[i][v] = true
				}
			}
			l.mu.Unlock()
		}
		out[i] = v
	}
	return out
}

// CounterVec is a counter with bounded labels.
type CounterVec struct {
	v *prometheus.CounterVec
	l *labels
}

// CounterVec registers and returns a counter with the given labels.
func (r *Registry) CounterVec(name, help string, labels ...Label) *CounterVec {
	l := newLabels(labels)
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, l.names())
	r.reg.MustRegister(v)
	return &CounterVec{v: v, l: l}
}

// Inc adds one to the series of values (one per label, in order).
func (c *CounterVec) Inc(values ...string) { c.Add(1, values...) }

// Add adds n to the series of values.
func (c *CounterVec) Add(n float64, values ...string) {
	c.v.WithLabelValues(c.l.bound(values)...).Add(n)
}

// HistogramVec is a histogram with bounded labels.
type HistogramVec struct {
	v *prometheus.HistogramVec
	l *labels
}

// DurationBuckets are histogram buckets for stage durations in seconds:
// from 10 ms to about 45 minutes.
var DurationBuckets = prometheus.ExponentialBuckets(0.01, 2.5, 15)

// RequestBuckets are histogram buckets for request durations in seconds.
var RequestBuckets = prometheus.DefBuckets

// HistogramVec registers and returns a histogram with the given buckets
// (DurationBuckets if nil) and labels.
func (r *Registry) HistogramVec(name, help string, buckets []float64, labels ...Label) *HistogramVec {
	if buckets == nil {
		buckets = DurationBuckets
	}
	l := newLabels(labels)
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, l.names())
	r.reg.MustRegister(v)
	return &HistogramVec{v: v, l: l}
}

// Observe records x in the series of values.
func (h *HistogramVec) Observe(x float64, values ...string) {
	h.v.WithLabelValues(h.l.bound(values)...).Observe(x)
}

// GaugeSet registers a gauge with one label whose values f computes at
// each scrape (within the check timeout). Every declared value is reported,
// 0 when f has none; values outside the set are summed into Other. When f
// fails, the scrape reports the gauge as an error (logged) and serves the
// other metrics.
func (r *Registry) GaugeSet(name, help string, label Label, f func(ctx context.Context) (map[string]float64, error)) {
	r.reg.MustRegister(&gaugeSet{
		desc: prometheus.NewDesc(name, help, []string{label.Name}, nil),
		l:    newLabels([]Label{label}), values: label.Values, f: f, wait: r.wait,
	})
}

type gaugeSet struct {
	desc   *prometheus.Desc
	l      *labels
	values []string
	f      func(ctx context.Context) (map[string]float64, error)
	wait   time.Duration
}

func (g *gaugeSet) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *gaugeSet) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), g.wait)
	defer cancel()
	got, err := g.f(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.desc, err)
		return
	}
	sums := map[string]float64{}
	for _, v := range g.values {
		sums[v] = 0
	}
	for k, n := range got {
		sums[g.l.bound([]string{k})[0]] += n
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, sums[k], k)
	}
}

// AddCheck registers a readiness check under name (a fixed word such as
// "metadata_db"; names are served by /readyz).
func (r *Registry) AddCheck(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, namedCheck{name, c})
}

// Readiness is the body of a /readyz answer: the result of every check
// ("ok", "failed" or "timed out") and the names of those that did not pass.
type Readiness struct {
	Status string            `json:"status"` // "ready" or "not ready"
	Checks map[string]string `json:"checks"`
	Failed []string          `json:"failed,omitempty"`
}

// Ready runs every check concurrently, each within the check timeout.
func (r *Registry) Ready(ctx context.Context) Readiness {
	r.mu.Lock()
	checks := slices.Clone(r.checks)
	r.mu.Unlock()
	res := Readiness{Status: "ready", Checks: map[string]string{}}
	type result struct {
		name string
		err  error
	}
	out := make(chan result, len(checks))
	for _, c := range checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, r.wait)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.fn(cctx) }()
			select {
			case err := <-done:
				out <- result{c.name, err}
			case <-cctx.Done():
				out <- result{c.name, fmt.Errorf("no answer within %s: %w", r.wait, context.DeadlineExceeded)}
			}
		}()
	}
	for range checks {
		c := <-out
		switch {
		case c.err == nil:
			res.Checks[c.name] = "ok"
			continue
		case errors.Is(c.err, context.DeadlineExceeded):
			res.Checks[c.name] = "timed out"
		default:
			res.Checks[c.name] = "failed"
		}
		res.Failed = append(res.Failed, c.name)
		r.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed", slog.String("check", c.name), slog.String("error", c.err.Error()))
	}
	if len(res.Failed) > 0 {
		sort.Strings(res.Failed)
		res.Status = "not ready"
	}
	return res
}

// MetricsHandler serves the registry in the Prometheus text format. A
// collector that fails is logged and left out; the rest are served.
func (r *Registry) MetricsHandler() http.Handler {
	return getOnly(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{r.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
}

// ReadyzHandler answers 200 with a Readiness body when every check passes,
// 503 naming the failed checks otherwise.
func (r *Registry) ReadyzHandler() http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		res := r.Ready(req.Context())
		code := http.StatusOK
		if len(res.Failed) > 0 {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, res)
	}))
}

// HealthzHandler answers 200 {"status":"ok"}: the process is alive and
// serving HTTP.
func HealthzHandler() http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
}

// Handler serves /metrics, /healthz and /readyz, and 404 elsewhere.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathMetrics, r.MetricsHandler())
	mux.Handle(PathHealthz, HealthzHandler())
	mux.Handle(PathReadyz, r.ReadyzHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint; try " + PathMetrics + ", " + PathHealthz + " or " + PathReadyz})
	})
	return mux
}

// ListenerCheck returns a check that the TCP listener at addr accepts
// connections (an unspecified IP is dialled on loopback).
func ListenerCheck(addr net.Addr) Check {
	target := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		target = net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
		if ta.IP.To4() == nil {
			target = net.JoinHostPort("::1", fmt.Sprint(ta.Port))
		}
	}
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// Serve listens on addr and serves h (over TLS when tlsCfg is not nil)
// until ctx is done; see ServeListener.
func Serve(ctx context.Context, addr string, h http.Handler, tlsCfg *tls.Config) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, tlsCfg)
}

// ServeListener serves h on ln (over TLS when tlsCfg is not nil) until ctx
// is done, then shuts down within 5 seconds and closes ln. It returns nil
// when ctx ended it.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, tlsCfg *tls.Config) error {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// Handshake noise from scanners is not worth a log line.
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// getOnly refuses methods other than GET and HEAD.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed; allowed: GET, HEAD"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.LogAttrs(context.Background(), slog.LevelWarn, "metrics collection", slog.String("error", fmt.Sprint(v...)))
}
