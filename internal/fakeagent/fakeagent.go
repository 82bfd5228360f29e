// Package fakeagent is a stand-in ferry-agent for tests of what sits above
// the agent RPC (the user API, the console): a real gRPC client of the
// control plane's agent service over mutual TLS that says Hello with a
// schema, sends heartbeats at the interval of Welcome, and answers each
// assignment with the job events ferry-agent sends for a successful job —
// reading with one table report per table, training with the model's
// metrics, writing with the write report and the engine's purge
// attestation, then succeeded — carrying plausible metadata, without a
// warehouse or an engine. (internal/loadtest's simulated agents send the
// same sequence.)
package fakeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/link"
)

// protocolVersion is the agent RPC version the fake agent speaks.
const protocolVersion = 1

// Config configures an Agent.
type Config struct {
	// Addr is the control plane's agent service (host:port).
	Addr string
	// TLS holds the agent's client certificate and the CA that verifies
	// the control plane.
	TLS *tls.Config
	// ID is the agent ID: the one its certificate names.
	ID string
	// Version and WarehouseKind go into Hello ("fake" and "duckdb" if
	// empty).
	Version, WarehouseKind string
	// Tables is the schema reported in Hello.
	Tables []*agentapi.TableMeta
	// JobTime is how long a job takes: 40 % reading, 40 % training, 20 %
	// writing (default 1 s).
	JobTime time.Duration
}

// Agent is a connected fake agent.
type Agent struct {
	cfg    Config
	cc     *grpc.ClientConn
	stream agentapi.AgentService_ConnectClient
	cancel context.CancelFunc
	out    chan *agentapi.AgentMessage
	wg     sync.WaitGroup
	closed atomic.Bool
	done   chan struct{}
	err    error // why the session ended; read after done is closed
}

// Start connects, says Hello and waits for Welcome; the agent then runs
// until Close or until the control plane ends the session.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Version == "" {
		cfg.Version = "fake"
	}
	if cfg.WarehouseKind == "" {
		cfg.WarehouseKind = "duckdb"
	}
	if cfg.JobTime <= 0 {
		cfg.JobTime = time.Second
	}
	cc, err := grpc.NewClient("passthrough:///"+cfg.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)))
	if err != nil {
		return nil, fmt.Errorf("fakeagent: dial: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := agentapi.NewAgentServiceClient(cc).Connect(sctx)
	if err != nil {
		cancel()
		cc.Close()
		return nil, fmt.Errorf("fakeagent: connect: %w", err)
	}
	a := &Agent{cfg: cfg, cc: cc, stream: stream, cancel: cancel, out: make(chan *agentapi.AgentMessage, 64), done: make(chan struct{})}
	fail := func(err error) (*Agent, error) {
		cancel()
		cc.Close()
		return nil, fmt.Errorf("fakeagent: %w", err)
	}
	hello := &agentapi.Hello{ProtocolVersion: protocolVersion, AgentId: cfg.ID, Version: cfg.Version, WarehouseKind: cfg.WarehouseKind, Tables: cfg.Tables}
	if err := stream.Send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Hello{Hello: hello}}); err != nil {
		return fail(fmt.Errorf("send hello: %w", err))
	}
	welcome := make(chan error, 1)
	var interval time.Duration
	go func() {
		m, err := stream.Recv()
		switch {
		case err != nil:
			welcome <- fmt.Errorf("await welcome: %w", err)
		case m.GetWelcome() == nil || m.GetWelcome().GetHeartbeatIntervalMillis() <= 0:
			welcome <- fmt.Errorf("first control message is %T, want a Welcome with a heartbeat interval", m.GetMsg())
		default:
			interval = time.Duration(m.GetWelcome().GetHeartbeatIntervalMillis()) * time.Millisecond
			welcome <- nil
		}
	}()
	select {
	case err := <-welcome:
		if err != nil {
			return fail(err)
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	a.wg.Go(func() { a.send(sctx, interval) })
	go a.receive(sctx)
	return a, nil
}

// send owns stream.Send: heartbeats at interval and job events.
func (a *Agent) send(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var m *agentapi.AgentMessage
		select {
		case <-ctx.Done():
			return
		case m = <-a.out:
		case now := <-t.C:
			m = &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Heartbeat{Heartbeat: &agentapi.Heartbeat{SentUnixNanos: now.UnixNano()}}}
		}
		if err := a.stream.Send(m); err != nil {
			a.cancel()
			return
		}
	}
}

// receive answers assignments until the stream ends.
func (a *Agent) receive(ctx context.Context) {
	defer close(a.done)
	for {
		m, err := a.stream.Recv()
		if err != nil {
			a.cancel()
			a.wg.Wait()
			if !a.closed.Load() {
				a.err = err
			}
			return
		}
		if asg := m.GetAssignment(); asg != nil {
			a.wg.Go(func() { a.run(ctx, asg) })
		}
	}
}

// run plays the events of a successful job.
func (a *Agent) run(ctx context.Context, asg *agentapi.JobAssignment) {
	for _, st := range Script(asg, a.cfg.Tables, a.cfg.JobTime) {
		t := time.NewTimer(st.Wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		st.Event.AtUnixNanos = now
		if p := st.Event.GetPurge(); p != nil {
			p.PurgedUnixNanos = now
		}
		select {
		case a.out <- &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_JobEvent{JobEvent: st.Event}}:
		case <-ctx.Done():
			return
		}
	}
}

// Close ends the session and waits for the agent's goroutines. It returns
// the error that had ended the session before, if any.
func (a *Agent) Close() error {
	a.closed.Store(true)
	a.cancel()
	<-a.done
	a.cc.Close()
	return a.err
}

// Step is one job event and the time to wait before sending it.
type Step struct {
	Wait  time.Duration
	Event *agentapi.JobEvent
}

// Script returns the events ferry-agent sends for a successful run of asg
// taking work in all: reading, a table report per table (columns from
// tables), training, the model's metrics (a binary classification with
// its baselines and feature importances), writing, the write report, the
// purge attestation (every byte received purged, no file written), and
// succeeded.
func Script(asg *agentapi.JobAssignment, tables []*agentapi.TableMeta, work time.Duration) []Step {
	job := asg.GetJobId()
	ev := func(state agentapi.JobState) *agentapi.JobEvent { return &agentapi.JobEvent{JobId: job, State: state} }
	const (
		reading  = agentapi.JobState_JOB_STATE_READING
		training = agentapi.JobState_JOB_STATE_TRAINING
		writing  = agentapi.JobState_JOB_STATE_WRITING
	)
	steps := []Step{{0, ev(reading)}}
	names := asg.GetTables()
	perTable := work * 4 / 10 / time.Duration(max(1, len(names)))
	var bytesIn int64
	for i, name := range names {
		rows := int64(20_000 + 7_919*i)
		st := &agentapi.TableStats{Table: name, Rows: rows, Bytes: rows * 28, Batches: (rows + 16383) / 16384, Seconds: perTable.Seconds()}
		for _, t := range tables {
			if t.GetName() == name {
				st.Columns = t.GetColumns()
				st.ColumnStats = columnStats(t, rows)
			}
		}
		bytesIn += st.Bytes
		e := ev(reading)
		e.Detail = &agentapi.JobEvent_TableStats{TableStats: st}
		steps = append(steps, Step{perTable, e})
	}
	metrics := &agentapi.TrainMetrics{
		ModelId: "model-" + job, TaskType: "binary_classification",
		Test:                &agentapi.Metric{Auroc: 0.78, AveragePrecision: 0.41, Accuracy: 0.91},
		Validation:          &agentapi.Metric{Auroc: 0.79, AveragePrecision: 0.43, Accuracy: 0.91},
		BaselineLabelRate:   &agentapi.Metric{Auroc: 0.5, AveragePrecision: 0.1},
		BaselineRecentCount: &agentapi.Metric{Auroc: 0.64, AveragePrecision: 0.19},
		TrainRows:           40_000, ValidationRows: 8_000, TestRows: 8_000, NumFeatures: 24, Anchors: 12,
		BestIteration: 87, PredictionRows: 5_000, FeatureSeconds: work.Seconds() * 0.1, TrainSeconds: work.Seconds() * 0.25,
		ScoreSeconds: work.Seconds() * 0.05, TestPositiveRate: 0.1, ParameterSets: 1,
		ScoringAnchorUnixNanos: time.Now().UTC().Truncate(24 * time.Hour).UnixNano(),
		FeatureImportance: map[string]float64{
			"orders.count_30d": 0.31, "orders.sum_amount_90d": 0.24, "orders.days_since_last": 0.19,
			"customers.signup_at.age_days": 0.14, "orders.mean_amount_365d": 0.12,
		},
		Roc: rocCurve(0.78),
	}
	m := ev(training)
	m.Detail = &agentapi.JobEvent_Metrics{Metrics: metrics}
	w := ev(writing)
	w.Detail = &agentapi.JobEvent_Write{Write: &agentapi.WriteReport{Table: asg.GetOutputTable(), Rows: metrics.PredictionRows, Seconds: (work * 2 / 10).Seconds()}}
	p := ev(writing)
	p.Detail = &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{Reason: link.PurgeCompleted, BytesReceived: bytesIn, BytesPurged: bytesIn}}
	return append(steps,
		Step{0, ev(training)},
		Step{work * 4 / 10, m},
		Step{0, ev(writing)},
		Step{work * 2 / 10, w},
		Step{0, p},
		Step{0, ev(agentapi.JobState_JOB_STATE_SUCCEEDED)})
}
