package controlplane

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/telemetry"
)

// The control plane's operational endpoints are on the user API listener:
// /healthz and /readyz answer without a token (a load balancer or
// Kubernetes probe has none, and they tell nothing but up or not);
// /metrics is an API endpoint like any other and needs the bearer token
// (Prometheus scrapes with authorization: {credentials_file: ...}).

// jobStates are the values of the state label.
var jobStates = []string{
	string(api.StateQueued), string(api.StateAssigned), string(api.StateReading), string(api.StateTraining),
	string(api.StateWriting), string(api.StateSucceeded), string(api.StateFailed), string(api.StateCancelled),
}

// timedStates are the states whose duration is observed when a job leaves
// them: the agent's stages.
var timedStates = []string{string(api.StateReading), string(api.StateTraining), string(api.StateWriting)}

// cpMetrics are the control plane's metrics. Labels are job states, stage
// names, RPC methods and codes, route patterns and status codes: never a
// job or agent ID, a table name or anything an agent or user sent.
type cpMetrics struct {
	reg         *telemetry.Registry
	transitions *telemetry.CounterVec
	stages      *telemetry.HistogramVec
	rpcErrors   *telemetry.RPCErrors
	requests    *telemetry.CounterVec
	durations   *telemetry.HistogramVec
}

// newMetrics makes the control plane's registry; checks and gauges that
// read the server are added by (*Server).registerTelemetry.
func newMetrics(log *slog.Logger) *cpMetrics {
	reg := telemetry.New(&telemetry.Options{Logger: log})
	return &cpMetrics{
		reg: reg,
		transitions: reg.CounterVec("ferry_controlplane_job_transitions_total", "Job state changes, by previous and new state.",
			telemetry.Label{Name: "from", Values: jobStates}, telemetry.Label{Name: "to", Values: jobStates}),
		stages: reg.HistogramVec("ferry_controlplane_stage_duration_seconds", "Time jobs spent in a running state (reading, training, writing), observed when they leave it.",
			nil, telemetry.Label{Name: "stage", Values: timedStates}),
		rpcErrors: reg.RPCErrors("ferry_controlplane_rpc_errors_total", "Agent RPCs that ended with an error, by method and gRPC code.",
			&agentapi.AgentService_ServiceDesc),
		requests: reg.CounterVec("ferry_controlplane_api_requests_total", "User API requests, by route pattern and status code.",
			telemetry.Label{Name: "route"}, telemetry.Label{Name: "code"}),
		durations: reg.HistogramVec("ferry_controlplane_api_request_duration_seconds", "User API request durations, by route pattern.",
			telemetry.RequestBuckets, telemetry.Label{Name: "route"}),
	}
}

// Metrics returns the control plane's metrics registry.
func (s *Server) Metrics() *telemetry.Registry { return s.metrics.reg }

// registerTelemetry adds the gauges and readiness checks that read the
// server: jobs by state (from the metadata database at each scrape),
// connected agents, the database and the agent listener.
func (s *Server) registerTelemetry() {
	reg := s.metrics.reg
	reg.GaugeSet("ferry_controlplane_jobs", "Jobs in the metadata database, by state.",
		telemetry.Label{Name: "state", Values: jobStates}, s.store.jobCounts)
	reg.GaugeFunc("ferry_controlplane_agents_connected", "Agents with an open session.", func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.sessions))
	})
	reg.AddCheck("metadata_db", s.store.ping)
	reg.AddCheck("agent_listener", telemetry.ListenerCheck(s.agentLn.Addr()))
}

// transitioned records a job's change of state at now: the transition, and
// how long the job spent in from when from is a running state.
func (s *Server) transitioned(ctx context.Context, job string, from, to api.JobState, now time.Time) {
	if from == "" || from == to {
		return
	}
	s.metrics.transitions.Inc(string(from), string(to))
	if from != api.StateReading && from != api.StateTraining && from != api.StateWriting {
		return
	}
	since, err := s.store.stateEnteredAt(ctx, job, from)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "job stage duration unknown", slog.String("job_id", job), slog.String("stage", string(from)), slog.String("error", err.Error()))
		return
	}
	s.metrics.stages.Observe(max(now.Sub(since), 0).Seconds(), string(from))
}

// observeRequest counts a user API request under its route pattern (set by
// the ServeMux that routed it; "unmatched" when none did).
func (s *Server) observeRequest(r *http.Request, status int, took time.Duration) {
	route := r.Pattern
	if h, ok := r.Context().Value(routeKey{}).(*string); ok && *h != "" {
		route = *h // set by the route that served it, below the authentication
	}
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.Inc(route, strconv.Itoa(status))
	s.metrics.durations.Observe(took.Seconds(), route)
}

// routeKey holds, in a request's context, the route pattern that served
// it: requests reach the routes as copies (with the principal in their
// context), so the pattern the inner mux sets is not on the outer request.
type routeKey struct{}

// quietPath reports whether a request is a probe or a scrape, logged at
// debug level only.
func quietPath(path string) bool {
	return path == api.PathHealthz || path == telemetry.PathReadyz || path == telemetry.PathMetrics
}

// jobCounts returns the number of jobs in each state.
func (s *store) jobCounts(ctx context.Context) (map[string]float64, error) {
	rows, err := s.db.Query(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("metadata db: job counts: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("metadata db: job counts: %w", err)
		}
		out[state] = float64(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata db: job counts: %w", err)
	}
	return out, nil
}

// stateEnteredAt returns when job last entered state.
func (s *store) stateEnteredAt(ctx context.Context, job string, state api.JobState) (time.Time, error) {
	var at sql.NullInt64
	err := s.db.QueryRow(ctx, `SELECT MAX(at_unix_nanos) FROM job_events WHERE job_id = ? AND state = ?`, job, state).Scan(&at)
	if err == nil && !at.Valid {
		err = errors.New("no such state change recorded")
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("metadata db: job %s entered %s: %w", job, state, err)
	}
	return time.Unix(0, at.Int64), nil
}

// ping checks that the metadata database answers a query.
func (s *store) ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("metadata db: %w", err)
	}
	return nil
}
