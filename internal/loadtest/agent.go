package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/link"
)

// Query is the predictive query every job of the load test runs; the
// simulated agents' schema (Tables) has what it needs.
const Query = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"

// Tables is the schema every simulated agent reports in its Hello: two
// tables, the shape of the demo warehouse's.
func Tables() []*agentapi.TableMeta {
	return []*agentapi.TableMeta{
		{
			Name: "customers",
			Columns: []*agentapi.Column{
				{Name: "customer_id", Type: "int64"},
				{Name: "signup_at", Type: "timestamp[us]"},
				{Name: "churned", Type: "bool", Nullable: true},
			},
			PrimaryKey: []string{"customer_id"},
		},
		{
			Name: "orders",
			Columns: []*agentapi.Column{
				{Name: "order_id", Type: "int64"},
				{Name: "customer_id", Type: "int64"},
				{Name: "amount", Type: "float64", Nullable: true},
				{Name: "ordered_at", Type: "timestamp[us]"},
			},
			PrimaryKey:  []string{"order_id"},
			ForeignKeys: []*agentapi.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}},
			TimeColumn:  "ordered_at",
		},
	}
}

// errorLog counts the errors of a run by kind and keeps the first few.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int
	first  []string
}

const keepErrors = 20

func (l *errorLog) add(kind, who string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[kind]++
	if len(l.first) < keepErrors {
		msg := kind
		if who != "" {
			msg += " (" + who + ")"
		}
		if err != nil {
			msg += ": " + err.Error()
		}
		l.first = append(l.first, msg)
	}
}

func (l *errorLog) snapshot() (total int, byKind map[string]int, first []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byKind = map[string]int{}
	for k, n := range l.counts {
		byKind[k] = n
		total += n
	}
	return total, byKind, append([]string(nil), l.first...)
}

// jobObs is what the agents saw of one job.
type jobObs struct {
	agent       string
	received    time.Time // the assignment arrived at the agent
	succeeded   time.Time // the agent sent SUCCEEDED
	assignments int       // assignments of this job received (one expected)
}

// fleet is the simulated agents of one run and what they observed.
type fleet struct {
	addr      string
	roots     *x509.CertPool
	jobTime   time.Duration
	tables    []*agentapi.TableMeta
	errs      *errorLog
	agents    []*simAgent
	wantJobs  int64
	draining  atomic.Bool  // set before the run ends the sessions itself
	heartbeat atomic.Int64 // heartbeats sent
	open      atomic.Int64 // sessions open now
	welcomed  atomic.Int64 // agents that got their first Welcome
	allIn     chan struct{}
	done      atomic.Int64 // jobs whose SUCCEEDED was sent
	allDone   chan struct{}

	mu      sync.Mutex
	connect []time.Duration // dial to first Welcome, per agent
	jobs    map[string]*jobObs
}

func newFleet(addr string, set *pkiSet, jobTime time.Duration, jobs int, errs *errorLog) *fleet {
	f := &fleet{
		addr: addr, roots: set.roots, jobTime: jobTime, tables: Tables(), errs: errs,
		wantJobs: int64(jobs), allIn: make(chan struct{}), allDone: make(chan struct{}),
		jobs: map[string]*jobObs{},
	}
	for i, id := range set.ids {
		f.agents = append(f.agents, &simAgent{f: f, id: id, cert: set.certs[i]})
	}
	if jobs == 0 {
		close(f.allDone)
	}
	return f
}

// start runs every agent until ctx is done, the first dials spread evenly
// over ramp (0: all at once); wait returns when all stopped.
func (f *fleet) start(ctx context.Context, ramp time.Duration) (wait func()) {
	var wg sync.WaitGroup
	for i, a := range f.agents {
		delay := ramp * time.Duration(i) / time.Duration(len(f.agents))
		wg.Go(func() {
			if sleepCtx(ctx, delay) == nil {
				a.run(ctx)
			}
		})
	}
	return wg.Wait
}

func (f *fleet) noteWelcome(d time.Duration) {
	f.mu.Lock()
	f.connect = append(f.connect, d)
	f.mu.Unlock()
	if f.welcomed.Add(1) == int64(len(f.agents)) {
		close(f.allIn)
	}
}

func (f *fleet) noteAssignment(agent, job string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.jobs[job]
	if o == nil {
		o = &jobObs{}
		f.jobs[job] = o
	}
	o.assignments++
	if o.assignments > 1 {
		f.errs.add("job assigned twice", agent, fmt.Errorf("job %s, first to %s", job, o.agent))
		return
	}
	o.agent, o.received = agent, at
}

func (f *fleet) noteSucceeded(job string, at time.Time) {
	f.mu.Lock()
	if o := f.jobs[job]; o != nil {
		o.succeeded = at
	}
	f.mu.Unlock()
	if f.done.Add(1) == f.wantJobs {
		close(f.allDone)
	}
}

// observed returns a copy of the job observations.
func (f *fleet) observed() map[string]jobObs {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]jobObs, len(f.jobs))
	for k, v := range f.jobs {
		out[k] = *v
	}
	return out
}

func (f *fleet) connectTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.connect...)
}

// simAgent is one simulated agent: a real gRPC client of the agent RPC with
// its own certificate and TCP connection. It behaves as ferry-agent does on
// the wire (Hello, heartbeats at the interval of Welcome, the job events of
// agent.runJob, reconnection with exponential backoff and jitter) without a
// warehouse or an engine.
type simAgent struct {
	f    *fleet
	id   string
	cert tls.Certificate
	busy atomic.Bool
	// running is the job in flight, for heartbeats.
	running atomic.Pointer[string]

	hbMu   sync.Mutex
	hbSent [8]time.Time // the last heartbeats sent, a ring
	hbNext int
}

// run keeps a session open until ctx is done or the fleet drains. Every
// failed connection and every session that ends while the run is on is an
// error of the run.
func (a *simAgent) run(ctx context.Context) {
	wait := 200 * time.Millisecond
	first := true
	for {
		start := time.Now()
		established, err := a.session(ctx, start, first)
		if established {
			first = false
		}
		if ctx.Err() != nil || a.f.draining.Load() {
			return
		}
		if established {
			a.f.errs.add("session ended", a.id, err)
			wait = 200 * time.Millisecond
		} else {
			a.f.errs.add("connection failed", a.id, err)
		}
		// Exponential backoff with jitter, as ferry-agent reconnects.
		d := wait/2 + rand.N(wait)
		wait = min(2*wait, 5*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// session runs one Connect stream; established reports whether Welcome
// arrived.
func (a *simAgent) session(ctx context.Context, dialStart time.Time, first bool) (established bool, err error) {
	creds := credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      a.f.roots,
		Certificates: []tls.Certificate{a.cert},
	})
	// Its own ClientConn, hence its own TCP connection and TLS session, as
	// a separate ferry-agent process would have.
	cc, err := grpc.NewClient("passthrough:///"+a.f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	stream, err := agentapi.NewAgentServiceClient(cc).Connect(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	hello := &agentapi.Hello{ProtocolVersion: controlplane.ProtocolVersion, AgentId: a.id, Version: "loadtest", WarehouseKind: "duckdb", Tables: a.f.tables}
	if err := stream.Send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Hello{Hello: hello}}); err != nil {
		return false, fmt.Errorf("send hello: %w", err)
	}
	m, err := stream.Recv()
	if err != nil {
		return false, fmt.Errorf("await welcome: %w", err)
	}
	w := m.GetWelcome()
	if w == nil || w.GetHeartbeatIntervalMillis() <= 0 {
		return false, fmt.Errorf("first control message is %T, want a Welcome with a heartbeat interval", m.GetMsg())
	}
	interval := time.Duration(w.GetHeartbeatIntervalMillis()) * time.Millisecond
	a.f.open.Add(1)
	defer a.f.open.Add(-1)
	if first {
		a.f.noteWelcome(time.Since(dialStart))
	}

	// One goroutine owns stream.Send: heartbeats and job events.
	out := make(chan *agentapi.AgentMessage, 64)
	sendErr := make(chan error, 1)
	wg.Go(func() {
		// The first heartbeat at a random point of the interval, so that
		// agents connected together do not beat together.
		t := time.NewTimer(rand.N(interval) + 1)
		defer t.Stop()
		for {
			var m *agentapi.AgentMessage
			select {
			case <-ctx.Done():
				return
			case m = <-out:
			case <-t.C:
				now := time.Now()
				hb := &agentapi.Heartbeat{SentUnixNanos: now.UnixNano()}
				if job := a.running.Load(); job != nil {
					hb.RunningJobId = *job
				}
				m = &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Heartbeat{Heartbeat: hb}}
				a.noteHeartbeat(now)
				t.Reset(interval)
			}
			if err := stream.Send(m); err != nil {
				sendErr <- err
				cancel()
				return
			}
			if m.GetHeartbeat() != nil {
				a.f.heartbeat.Add(1)
			}
		}
	})
	emit := func(ev *agentapi.JobEvent) bool {
		ev.AtUnixNanos = time.Now().UnixNano()
		select {
		case out <- &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_JobEvent{JobEvent: ev}}:
			return true
		case <-ctx.Done():
			return false
		}
	}

	for {
		m, err := stream.Recv()
		now := time.Now()
		if err != nil {
			cancel()
			select {
			case serr := <-sendErr:
				return true, fmt.Errorf("send: %w", serr)
			default:
			}
			return true, fmt.Errorf("receive: %w", err)
		}
		switch msg := m.GetMsg().(type) {
		case *agentapi.ControlMessage_Assignment:
			asg := msg.Assignment
			a.f.noteAssignment(a.id, asg.GetJobId(), now)
			if !a.busy.CompareAndSwap(false, true) {
				a.f.errs.add("assignment while busy", a.id, fmt.Errorf("job %s", asg.GetJobId()))
				emit(&agentapi.JobEvent{JobId: asg.GetJobId(), State: agentapi.JobState_JOB_STATE_FAILED,
					Detail: &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: "agent", Message: "agent is busy with another job"}}})
				continue
			}
			wg.Go(func() {
				defer a.busy.Store(false)
				a.runJob(ctx, asg, emit)
			})
		case *agentapi.ControlMessage_Cancel:
			a.f.errs.add("unexpected cancel", a.id, fmt.Errorf("job %s", msg.Cancel.GetJobId()))
		default:
			a.f.errs.add("unexpected control message", a.id, fmt.Errorf("%T", msg))
		}
	}
}

func (a *simAgent) noteHeartbeat(at time.Time) {
	a.hbMu.Lock()
	a.hbSent[a.hbNext%len(a.hbSent)] = at
	a.hbNext++
	a.hbMu.Unlock()
}

// heartbeatLag returns how long after its sending the control plane
// recorded the heartbeat it reports as last seen: the newest heartbeat
// sent at or before lastSeen. It reports false when no heartbeat sent
// before lastSeen is remembered (none sent yet, or lastSeen is the
// connection time).
func (a *simAgent) heartbeatLag(lastSeen time.Time) (time.Duration, bool) {
	a.hbMu.Lock()
	defer a.hbMu.Unlock()
	var best time.Time
	for _, t := range a.hbSent {
		if !t.IsZero() && !t.After(lastSeen) && t.After(best) {
			best = t
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return lastSeen.Sub(best), true
}

// lastHeartbeat returns when the agent last sent a heartbeat.
func (a *simAgent) lastHeartbeat() time.Time {
	a.hbMu.Lock()
	defer a.hbMu.Unlock()
	if a.hbNext == 0 {
		return time.Time{}
	}
	return a.hbSent[(a.hbNext-1)%len(a.hbSent)]
}

// runJob answers an assignment with the events ferry-agent's runJob sends
// for a successful job: reading, one table report per table, training, the
// model's metrics, writing, the write report, the engine's purge
// attestation and succeeded. The work between them is a sleep (JobTime in
// all: 40 % reading, 40 % training, 20 % writing); the reports carry
// plausible metadata.
func (a *simAgent) runJob(ctx context.Context, asg *agentapi.JobAssignment, emit func(*agentapi.JobEvent) bool) {
	job := asg.GetJobId()
	a.running.Store(&job)
	defer a.running.Store(nil)
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	ev := func(state agentapi.JobState) *agentapi.JobEvent { return &agentapi.JobEvent{JobId: job, State: state} }
	const (
		reading  = agentapi.JobState_JOB_STATE_READING
		training = agentapi.JobState_JOB_STATE_TRAINING
		writing  = agentapi.JobState_JOB_STATE_WRITING
	)
	work := a.f.jobTime
	tables := asg.GetTables()
	if !emit(ev(reading)) {
		return
	}
	var bytesIn int64
	for _, name := range tables {
		if !sleep(work * 4 / 10 / time.Duration(max(1, len(tables)))) {
			return
		}
		rows := 20_000 + rand.Int64N(80_000)
		st := &agentapi.TableStats{Table: name, Rows: rows, Bytes: rows * 28, Batches: (rows + 16383) / 16384, Seconds: work.Seconds() * 0.4 / float64(len(tables))}
		for _, t := range a.f.tables {
			if t.GetName() == name {
				st.Columns = t.GetColumns()
			}
		}
		bytesIn += st.Bytes
		e := ev(reading)
		e.Detail = &agentapi.JobEvent_TableStats{TableStats: st}
		if !emit(e) {
			return
		}
	}
	if !emit(ev(training)) || !sleep(work*4/10) {
		return
	}
	auc := 0.70 + rand.Float64()*0.1
	metrics := &agentapi.TrainMetrics{
		ModelId: "model-" + job, TaskType: "binary_classification",
		Test:                &agentapi.Metric{Auroc: auc, AveragePrecision: auc - 0.4, Accuracy: 0.9},
		Validation:          &agentapi.Metric{Auroc: auc + 0.01, AveragePrecision: auc - 0.39, Accuracy: 0.9},
		BaselineLabelRate:   &agentapi.Metric{Auroc: 0.5, AveragePrecision: 0.1},
		BaselineRecentCount: &agentapi.Metric{Auroc: 0.62, AveragePrecision: 0.18},
		TrainRows:           40_000, ValidationRows: 8_000, TestRows: 8_000, NumFeatures: 24, Anchors: 12,
		BestIteration: 87, PredictionRows: 5_000, FeatureSeconds: work.Seconds() * 0.1, TrainSeconds: work.Seconds() * 0.25,
		ScoreSeconds: work.Seconds() * 0.05, TestPositiveRate: 0.1, ParameterSets: 1,
		ScoringAnchorUnixNanos: time.Now().Truncate(24 * time.Hour).UnixNano(),
		FeatureImportance:      map[string]float64{"orders.count_30d": 0.41, "orders.sum_amount_90d": 0.33, "customers.signup_at.age_days": 0.26},
	}
	e := ev(training)
	e.Detail = &agentapi.JobEvent_Metrics{Metrics: metrics}
	if !emit(e) || !emit(ev(writing)) || !sleep(work*2/10) {
		return
	}
	e = ev(writing)
	e.Detail = &agentapi.JobEvent_Write{Write: &agentapi.WriteReport{Table: asg.GetOutputTable(), Rows: metrics.PredictionRows, Seconds: work.Seconds() * 0.2}}
	if !emit(e) {
		return
	}
	e = ev(writing)
	e.Detail = &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{Reason: link.PurgeCompleted, BytesReceived: bytesIn, BytesPurged: bytesIn, PurgedUnixNanos: time.Now().UnixNano()}}
	if !emit(e) || !emit(ev(agentapi.JobState_JOB_STATE_SUCCEEDED)) {
		return
	}
	a.f.noteSucceeded(job, time.Now())
}

// agentByID returns the simulated agents by ID.
func (f *fleet) agentByID() map[string]*simAgent {
	m := make(map[string]*simAgent, len(f.agents))
	for _, a := range f.agents {
		m[a.id] = a
	}
	return m
}

// kinds formats error counts by kind, most first.
func kinds(byKind map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range byKind {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].k < l[j].k })
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%d %s", e.n, e.k))
	}
	return strings.Join(parts, ", ")
}
