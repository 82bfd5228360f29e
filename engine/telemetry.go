package engine

import (
	"context"
	"fmt"
	"net"
	"sync"

	flightgen "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/telemetry"
)

// The engine serves /metrics, /healthz and /readyz on a listener of its
// own (Config.MetricsAddr), never on the Flight port. It speaks HTTPS with
// the engine's server certificate and asks no client certificate: a
// Prometheus server is not a Ferry component, and what it reads carries no
// job data — counts, sizes, durations and bounded labels (purge reasons,
// stage names, RPC methods and codes), never a job ID, a table name or a
// value. Bind it to an address only the monitoring network reaches.

// engineMetrics are the engine's metrics.
type engineMetrics struct {
	reg       *telemetry.Registry
	rows      prometheus.Counter
	bytes     prometheus.Counter
	batches   prometheus.Counter
	purges    *telemetry.CounterVec
	stages    *telemetry.HistogramVec
	rpcErrors *telemetry.RPCErrors
}

// purgeReasons are the values of the reason label.
var purgeReasons = []string{link.PurgeCompleted, link.PurgeFailed, link.PurgeCancelled, link.PurgeExpired, link.PurgeShutdown, link.PurgeRestarted}

func (s *Server) newMetrics() *engineMetrics {
	reg := telemetry.New(&telemetry.Options{Logger: s.log})
	m := &engineMetrics{
		reg:     reg,
		rows:    reg.Counter("ferry_engine_rows_received_total", "Rows of job tables received from agents (each batch once, resent batches not counted)."),
		bytes:   reg.Counter("ferry_engine_bytes_received_total", "Bytes of job tables received from agents (Arrow buffer sizes)."),
		batches: reg.Counter("ferry_engine_batches_received_total", "Arrow record batches of job tables received from agents."),
		purges: reg.CounterVec("ferry_engine_purges_total", "Jobs purged from memory, by reason.",
			telemetry.Label{Name: "reason", Values: purgeReasons}),
		stages: reg.HistogramVec("ferry_engine_stage_duration_seconds", "Time spent per job in each engine stage (features, train, score).",
			nil, telemetry.Label{Name: "stage", Values: []string{"features", "train", "score"}}),
		rpcErrors: reg.RPCErrors("ferry_engine_rpc_errors_total", "Flight RPCs that ended with an error, by method and gRPC code.",
			&flightgen.FlightService_ServiceDesc),
	}
	reg.GaugeFunc("ferry_engine_jobs_active", "Jobs whose data the engine holds in memory.", func() float64 { return float64(s.store.Len()) })
	reg.AddCheck("flight_listener", telemetry.ListenerCheck(s.lis.Addr()))
	return m
}

// Metrics returns the engine's metrics registry.
func (s *Server) Metrics() *telemetry.Registry { return s.metrics.reg }

// MetricsAddr returns the address of the metrics listener, or nil when
// Config.MetricsAddr is empty.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// listenMetrics binds the metrics listener when Config.MetricsAddr is set.
func (s *Server) listenMetrics() error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	tlsCfg, err := s.cfg.TLS.ServerConfigNoClientCert()
	if err != nil {
		return fmt.Errorf("engine: metrics: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("engine: metrics: listen %s: %w", s.cfg.MetricsAddr, err)
	}
	s.metricsLn, s.metricsTLS = ln, tlsCfg
	return nil
}

// serveMetrics serves the metrics listener until ctx is done; wait returns
// when it has stopped.
func (s *Server) serveMetrics(ctx context.Context) (wait func()) {
	if s.metricsLn == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := telemetry.ServeListener(ctx, s.metricsLn, s.metrics.reg.Handler(), s.metricsTLS); err != nil {
			s.log.Error("metrics listener stopped", "error", err.Error())
		}
	}()
	s.log.Info("engine metrics listening", "addr", s.metricsLn.Addr().String(), "tls_min", "1.3", "client_auth", "none")
	return wg.Wait
}

// purged counts a purge.
func (s *Server) purged(att link.PurgeAttestation) {
	s.metrics.purges.Inc(att.Reason)
}
