package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/array"
	flightgen "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/telemetry"
)

// The agent listens on no port by default: invariant 4 says nothing dials
// into the customer's network from outside it. A scrape by the customer's
// own Prometheus, inside that network, is the customer's to allow:
// metrics_addr turns on /metrics, /healthz and /readyz (plain HTTP), on a
// loopback address only (a Prometheus or an exporter sidecar on the same
// host or pod) unless metrics_allow_non_loopback says the customer chose
// a wider address, which their network policy then guards. What it serves
// carries no row value, no credential and no identifier: counts, sizes,
// durations and bounded labels (stage names, outcomes, RPC methods and
// codes).

// Job outcomes, the values of ferry_agent_jobs_total's outcome label.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed"
	outcomeCancelled = "cancelled"
	outcomeRefused   = "refused" // assigned while another job ran
)

// Stages timed by ferry_agent_stage_duration_seconds: the stages of a
// job's errors.
var agentStages = []string{"read", "stream", "train", "writeback"}

// agentMetrics are the agent's metrics. A nil *agentMetrics records
// nothing (an Agent made without New, in tests).
type agentMetrics struct {
	reg            *telemetry.Registry
	rowsRead       prometheus.Counter
	bytesSent      prometheus.Counter
	jobs           *telemetry.CounterVec
	stages         *telemetry.HistogramVec
	rpcErrors      *telemetry.RPCErrors
	connected      prometheus.Gauge
	leaseRenewals  prometheus.Counter
	readResumes    prometheus.Counter
	mu             sync.Mutex
	controlPlaneUp bool
}

func newAgentMetrics(reg *telemetry.Registry) *agentMetrics {
	m := &agentMetrics{
		reg:      reg,
		rowsRead: reg.Counter("ferry_agent_rows_read_total", "Rows read from the warehouse for jobs."),
		bytesSent: reg.Counter("ferry_agent_bytes_sent_total",
			"Bytes of table data sent to the engine (Arrow buffer sizes before compression; resent batches included)."),
		jobs: reg.CounterVec("ferry_agent_jobs_total", "Jobs the agent ended, by outcome.",
			telemetry.Label{Name: "outcome", Values: []string{outcomeSucceeded, outcomeFailed, outcomeCancelled, outcomeRefused}}),
		stages: reg.HistogramVec("ferry_agent_stage_duration_seconds", "Time completed job stages took (read: warehouse sign-in and schema, stream, train, writeback).",
			nil, telemetry.Label{Name: "stage", Values: agentStages}),
		rpcErrors: reg.RPCErrors("ferry_agent_rpc_errors_total", "Calls to the control plane and the engine that ended with an error, by method and gRPC code.",
			&agentapi.AgentService_ServiceDesc, &flightgen.FlightService_ServiceDesc),
		connected:     reg.Gauge("ferry_agent_connected", "1 while the agent has a session with the control plane."),
		leaseRenewals: reg.Counter("ferry_agent_vault_lease_renewals_total", "Renewals of the leases of the warehouse credentials from Vault."),
		readResumes:   reg.Counter("ferry_agent_read_resumes_total", "Warehouse reads resumed on a new connection after a break."),
	}
	reg.AddCheck("control_plane", func(context.Context) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.controlPlaneUp {
			return errors.New("no session with the control plane")
		}
		return nil
	})
	return m
}

// setConnected records whether a control-plane session is open.
func (m *agentMetrics) setConnected(up bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.controlPlaneUp = up
	m.mu.Unlock()
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

func (m *agentMetrics) jobEnded(outcome string) {
	if m != nil {
		m.jobs.Inc(outcome)
	}
}

func (m *agentMetrics) stage(name string, seconds float64) {
	if m != nil {
		m.stages.Observe(seconds, name)
	}
}

func (m *agentMetrics) sent(bytes int64) {
	if m != nil {
		m.bytesSent.Add(float64(bytes))
	}
}

func (m *agentMetrics) leaseRenewed() {
	if m != nil {
		m.leaseRenewals.Inc()
	}
}

func (m *agentMetrics) readResumed() {
	if m != nil {
		m.readResumes.Inc()
	}
}

// countRows wraps r so that the rows it yields are counted as read.
func (m *agentMetrics) countRows(r array.RecordReader) array.RecordReader {
	if m == nil {
		return r
	}
	return &countingReader{RecordReader: r, rows: m.rowsRead}
}

type countingReader struct {
	array.RecordReader
	rows prometheus.Counter
}

func (c *countingReader) Next() bool {
	if !c.RecordReader.Next() {
		return false
	}
	c.rows.Add(float64(c.RecordReader.RecordBatch().NumRows()))
	return true
}

// rpcOptions count the errors of the agent's calls to the control plane
// and the engine.
func (a *Agent) rpcOptions() []grpc.DialOption {
	if a.metrics == nil {
		return nil
	}
	return a.metrics.rpcErrors.DialOptions()
}

// Metrics returns the agent's metrics registry.
func (a *Agent) Metrics() *telemetry.Registry { return a.metrics.reg }

// checkMetricsAddr refuses a metrics address that is not loopback unless
// allowed.
func checkMetricsAddr(addr string, allowNonLoopback bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics_addr %q: want host:port: %w", addr, err)
	}
	if allowNonLoopback {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("metrics_addr %q is not a loopback address: the agent accepts no connection from outside its host "+
		"unless metrics_allow_non_loopback: true records that the customer allows scrapes from their network", addr)
}

// listenMetrics binds the metrics listener when the configuration asks for
// one (nil otherwise).
func (a *Agent) listenMetrics(ctx context.Context) (net.Listener, error) {
	if a.cfg.MetricsAddr == "" {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", a.cfg.MetricsAddr, err)
	}
	return ln, nil
}
