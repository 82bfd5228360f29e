package controlplane_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/pki"
)

func TestAPIAuth(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tests := []struct {
		name   string
		path   string
		header string
		want   int
	}{
		{"no token", "/v1/jobs", "", http.StatusUnauthorized},
		{"wrong token", "/v1/jobs", "Bearer not-the-token", http.StatusUnauthorized},
		{"token as prefix", "/v1/jobs", "Bearer " + testToken[:10], http.StatusUnauthorized},
		{"wrong scheme", "/v1/jobs", "Basic " + testToken, http.StatusUnauthorized},
		{"no token on agents", "/v1/agents", "", http.StatusUnauthorized},
		{"no token on unknown path", "/v1/nothing", "", http.StatusUnauthorized},
		{"right token", "/v1/jobs", "Bearer " + testToken, http.StatusOK},
		{"scheme is case-insensitive", "/v1/agents", "bearer " + testToken, http.StatusOK},
		{"unknown path", "/v1/nothing", "Bearer " + testToken, http.StatusNotFound},
		{"bad limit", "/v1/jobs?limit=0", "Bearer " + testToken, http.StatusBadRequest},
		{"limit", "/v1/jobs?limit=5", "Bearer " + testToken, http.StatusOK},
		{"unknown job", "/v1/jobs/j-0123456789abcdef", "Bearer " + testToken, http.StatusNotFound},
		{"healthz needs no token", "/healthz", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.do(http.MethodGet, tt.path, tt.header, "")
			if code != tt.want {
				t.Fatalf("status = %d, want %d (body %s)", code, tt.want, body)
			}
			if code >= 400 && errorBody(t, body) == "" {
				t.Errorf("error body %q has no error message", body)
			}
		})
	}
	if strings.Contains(h.logs.String(), testToken) {
		t.Error("the API token appears in the logs")
	}
}

func TestSubmitWithoutAgent(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	_, err := h.client.Submit(context.Background(), testQuery, "churn_predictions")
	var se *apiclient.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable || !strings.Contains(se.Message, "no agent") {
		t.Fatalf("Submit without an agent: %v, want 503 saying no agent reported a schema", err)
	}
}

func TestSubmitValidation(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	h.connectAgent(true)
	auth := "Bearer " + testToken
	tests := []struct {
		name     string
		body     string
		want     int
		wantText string
	}{
		{"syntax error", `{"query": "PREDIKT x", "output_table": "p"}`, 400, "line 1, col 1: expected PREDICT"},
		{"unknown table", `{"query": "PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", "output_table": "p"}`, 400, `table "ordrs" not found (did you mean "orders"?)`},
		{"unknown column", `{"query": "PREDICT SUM(orders.amout, 0, 30, days) FOR EACH customers.customer_id", "output_table": "p"}`, 400, `column "amout" not found in table "orders" (did you mean "amount"?)`},
		{"empty query", `{"query": "  ", "output_table": "p"}`, 400, "query is empty"},
		{"output table starts with digit", `{"query": "` + testQuery + `", "output_table": "1p"}`, 400, "must not start with a digit"},
		{"output table with dot", `{"query": "` + testQuery + `", "output_table": "s.p"}`, 400, "only ASCII letters, digits and underscores"},
		{"output table with quote", `{"query": "` + testQuery + `", "output_table": "p\"; DROP"}`, 400, "only ASCII letters, digits and underscores"},
		{"output table missing", `{"query": "` + testQuery + `"}`, 400, "output_table is empty"},
		{"unknown field", `{"query": "` + testQuery + `", "output_table": "p", "priority": 1}`, 400, `unknown field "priority"`},
		{"not JSON", `PREDICT`, 400, "invalid request body"},
		{"trailing data", `{"query": "` + testQuery + `", "output_table": "p"} {}`, 400, "unexpected data"},
		{"empty body", ``, 400, "request body is empty"},
		{"too large", `{"query": "` + strings.Repeat("x", 70<<10) + `", "output_table": "p"}`, 413, "larger than"},
		{"valid", `{"query": "` + testQuery + `", "output_table": "churn_predictions_2"}`, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.do(http.MethodPost, "/v1/jobs", auth, tt.body)
			if code != tt.want {
				t.Fatalf("status = %d, want %d (body %s)", code, tt.want, body)
			}
			if tt.wantText != "" {
				if msg := errorBody(t, body); !strings.Contains(msg, tt.wantText) {
					t.Errorf("error = %q, want it to contain %q", msg, tt.wantText)
				}
			}
		})
	}
	jobs, err := h.client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Errorf("%d jobs stored, want only the valid one", len(jobs))
	}
}

func TestJobLifecycle(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	ctx := context.Background()
	a := h.connectAgent(true)

	agents, err := h.client.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].ID != testAgentID || !agents[0].Connected || agents[0].WarehouseKind != "duckdb" ||
		strings.Join(agents[0].Tables, ",") != "customers,orders" {
		t.Fatalf("agents = %+v", agents)
	}

	j1, err := h.client.Submit(ctx, testQuery, "churn_predictions")
	if err != nil {
		t.Fatal(err)
	}
	// The scheduler may assign the job before the submit reads it back.
	if !strings.HasPrefix(j1.ID, "j-") || len(j1.ID) != 18 || (j1.State != api.StateQueued && j1.State != api.StateAssigned) ||
		strings.Join(j1.Tables, ",") != "orders,customers" {
		t.Fatalf("submitted job = %+v", j1)
	}
	asg := a.recv().GetAssignment()
	if asg == nil || asg.GetJobId() != j1.ID || asg.GetQuery() != testQuery || asg.GetOutputTable() != "churn_predictions" ||
		strings.Join(asg.GetTables(), ",") != "orders,customers" || asg.GetCreatedUnixNanos() != j1.CreatedAt.UnixNano() {
		t.Fatalf("assignment = %v, job %+v", asg, j1)
	}

	// A second job waits: one job per agent at a time.
	j2, err := h.client.Submit(ctx, "PREDICT customers.churned FOR EACH customers.customer_id", "churned_predictions")
	if err != nil {
		t.Fatal(err)
	}
	if d := h.waitState(j1.ID, api.StateAssigned); d.AgentID != testAgentID {
		t.Errorf("job agent = %q", d.AgentID)
	}

	a.event(j1.ID, agentapi.JobState_JOB_STATE_READING, nil)
	for _, ts := range []*agentapi.TableStats{
		{Table: "orders", Rows: 1000, Bytes: 64000, Batches: 2, Seconds: 0.5, Columns: testTables()[1].Columns},
		{Table: "customers", Rows: 100, Bytes: 1600, Batches: 1, Seconds: 0.1, Columns: testTables()[0].Columns},
	} {
		a.event(j1.ID, agentapi.JobState_JOB_STATE_READING, func(ev *agentapi.JobEvent) { ev.Detail = &agentapi.JobEvent_TableStats{TableStats: ts} })
	}
	a.event(j1.ID, agentapi.JobState_JOB_STATE_TRAINING, nil)
	a.event(j1.ID, agentapi.JobState_JOB_STATE_TRAINING, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Metrics{Metrics: &agentapi.TrainMetrics{
			ModelId: "m-1", TaskType: "binary_classification",
			Test:              &agentapi.Metric{Auroc: 0.81, AveragePrecision: 0.42},
			BaselineLabelRate: &agentapi.Metric{Auroc: 0.5, AveragePrecision: 0.2},
			TrainRows:         700, ValidationRows: 150, TestRows: 150, NumFeatures: 12, Anchors: 4, BestIteration: 37,
			PredictionRows: 100, TrainSeconds: 1.5, TestPositiveRate: 0.2, ScoringAnchorUnixNanos: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
			FeatureImportance: map[string]float64{"count_orders_30d": 12.5, "sum_amount_90d": 3.25},
		}}
	})
	a.event(j1.ID, agentapi.JobState_JOB_STATE_WRITING, nil)
	a.event(j1.ID, agentapi.JobState_JOB_STATE_WRITING, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Write{Write: &agentapi.WriteReport{Table: "churn_predictions", Rows: 100, Seconds: 0.2}}
	})
	a.event(j1.ID, agentapi.JobState_JOB_STATE_SUCCEEDED, nil)
	a.event(j1.ID, agentapi.JobState_JOB_STATE_SUCCEEDED, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{Reason: "job done", BytesReceived: 65600, BytesPurged: 65600, PurgedUnixNanos: time.Now().UnixNano()}}
	})

	// The agent is idle again: the second job is assigned.
	if asg := a.recv().GetAssignment(); asg.GetJobId() != j2.ID {
		t.Fatalf("second assignment = %v, want job %s", asg, j2.ID)
	}

	d := h.waitState(j1.ID, api.StateSucceeded)
	// The purge report follows the terminal state on the same stream, and the
	// next assignment may be sent before it is recorded: wait for it.
	for deadline := time.Now().Add(5 * time.Second); d.Purge == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		d = h.waitState(j1.ID, api.StateSucceeded)
	}
	var states []string
	for _, c := range d.History {
		states = append(states, string(c.State))
	}
	if got := strings.Join(states, ","); got != "queued,assigned,reading,training,writing,succeeded" {
		t.Errorf("history = %s", got)
	}
	if len(d.TableStats) != 2 || d.TableStats[0].Table != "orders" || d.TableStats[0].Rows != 1000 ||
		len(d.TableStats[0].Columns) != 4 || d.TableStats[0].Columns[3].Type != "timestamp[us]" {
		t.Errorf("table stats = %+v", d.TableStats)
	}
	if m := d.Model; m == nil || m.ModelID != "m-1" || m.Test == nil || m.Test.AUROC != 0.81 || m.BaselineLabelRate.AveragePrecision != 0.2 ||
		m.BaselineRecentCount != nil || m.BestIteration != 37 || m.FeatureImportance["count_orders_30d"] != 12.5 || m.ScoringAnchor.Year() != 2025 {
		t.Errorf("model = %+v", d.Model)
	}
	if d.Purge == nil || d.Purge.BytesPurged != 65600 || d.Purge.FilesWritten != 0 {
		t.Errorf("purge = %+v", d.Purge)
	}
	if d.Write == nil || d.Write.Table != "churn_predictions" || d.Write.Rows != 100 {
		t.Errorf("write = %+v", d.Write)
	}
	if d.Error != nil {
		t.Errorf("error = %+v", d.Error)
	}

	jobs, err := h.client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != j2.ID || jobs[1].ID != j1.ID {
		t.Errorf("list = %+v, want newest first", jobs)
	}
	if _, err := h.client.Get(ctx, "j-0000000000000000"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("Get unknown job: %v, want 404", err)
	}
}

func isStatus(err error, code int) bool {
	var se *apiclient.StatusError
	return errors.As(err, &se) && se.StatusCode == code
}

func TestFailedJobErrorNotLogged(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	ctx := context.Background()
	a := h.connectAgent(true)
	j, err := h.client.Submit(ctx, testQuery, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	const canary = "canary-7f3a9c column amount overflow"
	a.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	a.event(j.ID, agentapi.JobState_JOB_STATE_FAILED, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: "read", Message: canary}}
	})
	a.event(j.ID, agentapi.JobState_JOB_STATE_FAILED, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{Reason: "job failed", BytesReceived: 10, BytesPurged: 10}}
	})
	d := h.waitState(j.ID, api.StateFailed)
	for d.Purge == nil {
		time.Sleep(20 * time.Millisecond)
		d = h.waitState(j.ID, api.StateFailed)
	}
	if d.Error == nil || d.Error.Stage != "read" || d.Error.Message != canary {
		t.Errorf("error = %+v, want the agent's stage and message stored", d.Error)
	}
	if strings.Contains(h.logs.String(), "canary-7f3a9c") {
		t.Error("the job error message appears in the logs")
	}
}

func TestHelloRefused(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tests := []struct {
		name     string
		identity string
		msg      *agentapi.AgentMessage
		want     codes.Code
	}{
		{"agent id differs from certificate", "agent", hello("agent-2"), codes.PermissionDenied},
		{"certificate of another identity", "user", hello(testAgentID), codes.PermissionDenied},
		{"wrong protocol version", "agent", func() *agentapi.AgentMessage {
			m := hello(testAgentID)
			m.GetHello().ProtocolVersion = 2
			return m
		}(), codes.InvalidArgument},
		{"first message not hello", "agent", &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Heartbeat{Heartbeat: &agentapi.Heartbeat{}}}, codes.InvalidArgument},
		{"bad schema", "agent", func() *agentapi.AgentMessage {
			m := hello(testAgentID)
			m.GetHello().Tables[1].TimeColumn = "no_such_column"
			return m
		}(), codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := h.dialAgent(tt.identity)
			a.send(tt.msg)
			err := a.recvErr()
			if status.Code(err) != tt.want {
				t.Fatalf("stream error = %v, want %s", err, tt.want)
			}
		})
	}
	agents, err := h.client.Agents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 0 {
		t.Errorf("refused agents were recorded: %+v", agents)
	}
}

func TestNoClientCertificate(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	pool, err := pki.LoadCAPool(pki.DevFiles(h.certDir, "controlplane").CA)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}},
		{"TLS 1.2", func() *tls.Config {
			c, err := pki.DevFiles(h.certDir, "agent").ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.helloWith(tt.cfg)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("error = %v, want Unavailable (handshake refused)", err)
			}
		})
	}
}

func TestIllegalTransitionRefused(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	ctx := context.Background()
	a := h.connectAgent(true)
	j, err := h.client.Submit(ctx, testQuery, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	// assigned -> succeeded skips reading, training and writing.
	a.event(j.ID, agentapi.JobState_JOB_STATE_SUCCEEDED, nil)
	// QUEUED is never reported by an agent.
	a.event(j.ID, agentapi.JobState_JOB_STATE_QUEUED, nil)
	// A legal event afterwards still applies: the session survives.
	a.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	d := h.waitState(j.ID, api.StateReading)
	for _, c := range d.History {
		if c.State == api.StateSucceeded {
			t.Errorf("history holds the refused transition: %+v", d.History)
		}
	}
	if logs := h.logs.String(); !strings.Contains(logs, "illegal job state transition refused") {
		t.Errorf("refused transition not logged:\n%s", logs)
	}
	// Events for unknown jobs are refused too.
	a.event("j-ffffffffffffffff", agentapi.JobState_JOB_STATE_READING, nil)
	a.event(j.ID, agentapi.JobState_JOB_STATE_TRAINING, nil)
	h.waitState(j.ID, api.StateTraining)
}

// TestAgentDisconnectRequeuesJob: a job whose agent goes away while it runs
// (the agent stops its jobs with its session) goes back to the queue with
// a note saying why, runs again when an agent can take it, and fails once
// it has had Config.JobAttempts attempts.
func TestAgentDisconnectRequeuesJob(t *testing.T) {
	h := startHarness(t, harnessOptions{attempts: 2})
	ctx := context.Background()
	a := h.connectAgent(true)
	j, err := h.client.Submit(ctx, testQuery, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	a.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	h.waitState(j.ID, api.StateReading)
	a.cancel()
	d := h.waitState(j.ID, api.StateQueued)
	last := d.History[len(d.History)-1]
	if d.Error != nil || d.AgentID != "" || !strings.Contains(last.Note, "re-queued: agent \"agent-1\" disconnected while the job was reading") || !strings.Contains(last.Note, "attempt 1 of 2") {
		t.Errorf("re-queued job: error %+v, agent %q, last change %+v", d.Error, d.AgentID, last)
	}
	agents, err := h.client.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].Connected {
		t.Errorf("agents = %+v, want one disconnected agent\n%s", agents, h.logs.String())
	}

	// The agent comes back (restarted): the job is assigned again, and an
	// event of the first attempt's stream is not the second's concern.
	a2 := h.connectAgent(true)
	if got := a2.recv().GetAssignment().GetJobId(); got != j.ID {
		t.Fatalf("reconnected agent got %q, want the re-queued job %s", got, j.ID)
	}
	a2.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	d = h.waitState(j.ID, api.StateReading)
	if d.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", d.Attempts)
	}
	// Its second agent goes away too: out of attempts, the job fails.
	a2.cancel()
	d = h.waitState(j.ID, api.StateFailed)
	if d.Error == nil || d.Error.Stage != "agent" || !strings.Contains(d.Error.Message, "disconnected while the job was reading") || !strings.Contains(d.Error.Message, "gave up after 2 attempts") {
		t.Errorf("error = %+v", d.Error)
	}
	var states []api.JobState
	for _, c := range d.History {
		states = append(states, c.State)
	}
	want := []api.JobState{api.StateQueued, api.StateAssigned, api.StateReading, api.StateQueued, api.StateAssigned, api.StateReading, api.StateFailed}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("history = %v, want %v", states, want)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "job re-queued: its agent went away") || !strings.Contains(logs, "no attempt left") {
		t.Errorf("re-queue and give-up not logged:\n%s", logs)
	}

	// An agent still reporting on the job the control plane failed is told
	// to cancel it.
	a3 := h.connectAgent(true)
	a3.event(j.ID, agentapi.JobState_JOB_STATE_TRAINING, nil)
	if c := a3.recv().GetCancel(); c.GetJobId() != j.ID {
		t.Errorf("got %v, want CancelJob for %s", c, j.ID)
	}
}

func TestHeartbeatTimeoutRequeuesJob(t *testing.T) {
	h := startHarness(t, harnessOptions{heartbeat: 100 * time.Millisecond, attempts: 1})
	ctx := context.Background()
	a := h.connectAgent(false) // never sends heartbeats
	j, err := h.client.Submit(ctx, testQuery, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	if err := a.recvErr(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("stream error = %v, want DeadlineExceeded", err)
	}
	d := h.waitState(j.ID, api.StateFailed)
	if d.Error == nil || !strings.Contains(d.Error.Message, "no message for") || !strings.Contains(d.Error.Message, "gave up after 1 attempts") {
		t.Errorf("error = %+v", d.Error)
	}
}

func TestCancel(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	ctx := context.Background()
	a := h.connectAgent(true)
	running, err := h.client.Submit(ctx, testQuery, "p1")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	queued, err := h.client.Submit(ctx, testQuery, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if j, err := h.client.Cancel(ctx, queued.ID); err != nil || j.State != api.StateCancelled {
		t.Fatalf("cancel queued job: %+v, %v", j, err)
	}
	if _, err := h.client.Cancel(ctx, queued.ID); !isStatus(err, http.StatusConflict) {
		t.Errorf("cancel a cancelled job: %v, want 409", err)
	}
	if _, err := h.client.Cancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	if c := a.recv().GetCancel(); c.GetJobId() != running.ID {
		t.Fatalf("got %v, want CancelJob for %s", c, running.ID)
	}
	a.event(running.ID, agentapi.JobState_JOB_STATE_CANCELLED, nil)
	h.waitState(running.ID, api.StateCancelled)
}

// runningBeforeRestart starts a control plane on fresh directories with an
// agent, submits a job and reports it through the given states; it returns
// the harness, the agent, the job and the directories a restarted control
// plane reuses.
func runningBeforeRestart(t *testing.T, states ...agentapi.JobState) (h *harness, a *testAgent, job *api.Job, certDir, dataDir string) {
	t.Helper()
	certDir, dataDir = t.TempDir(), t.TempDir()
	if err := pkiDevCerts(certDir); err != nil {
		t.Fatal(err)
	}
	h = startHarness(t, harnessOptions{certDir: certDir, dataDir: dataDir})
	a = h.connectAgent(true)
	job, err := h.client.Submit(context.Background(), testQuery, "p1")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	for _, st := range states {
		a.event(job.ID, st, nil)
	}
	want := map[agentapi.JobState]api.JobState{agentapi.JobState_JOB_STATE_READING: api.StateReading, agentapi.JobState_JOB_STATE_TRAINING: api.StateTraining}[states[len(states)-1]]
	h.waitState(job.ID, want)
	return h, a, job, certDir, dataDir
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	h, a, running, certDir, dataDir := runningBeforeRestart(t, agentapi.JobState_JOB_STATE_READING)
	h.stop() // Serve returns nil on cancel: checked by stop
	if err := a.recvErr(); status.Code(err) != codes.Unavailable {
		t.Errorf("agent stream on shutdown: %v, want Unavailable", err)
	}

	h2 := startHarness(t, harnessOptions{certDir: certDir, dataDir: dataDir})
	d := h2.waitState(running.ID, api.StateQueued)
	if last := d.History[len(d.History)-1]; d.Error != nil || !strings.Contains(last.Note, "control plane shut down") {
		t.Errorf("job after restart: error %+v, last change %+v", d.Error, last)
	}
	agents, err := h2.client.Agents(ctx)
	if err != nil || len(agents) != 1 || agents[0].Connected {
		t.Errorf("agents after restart = %+v, %v", agents, err)
	}
	// The schema the agent reported survives: jobs can be queued at once.
	second, err := h2.client.Submit(ctx, testQuery, "p2")
	if err != nil {
		t.Errorf("submit after restart: %v", err)
	}
	// The agent reconnects: the job that survived the restart runs first
	// (oldest first) and succeeds, then the new one.
	a2 := h2.connectAgent(true)
	if got := a2.recv().GetAssignment().GetJobId(); got != running.ID {
		t.Fatalf("after restart the agent got %q, want the surviving job %s", got, running.ID)
	}
	a2.succeed(running.ID)
	if d := h2.waitState(running.ID, api.StateSucceeded); d.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", d.Attempts)
	}
	if second != nil {
		if got := a2.recv().GetAssignment().GetJobId(); got != second.ID {
			t.Errorf("then the agent got %q, want %s", got, second.ID)
		}
	}
}

// TestRestartRecoversRunningJobs: a control plane killed without a graceful
// shutdown leaves a job running in its database; the next start re-queues
// it (the agent stopped it when its stream broke).
func TestRestartRecoversRunningJobs(t *testing.T) {
	ctx := context.Background()
	h, _, j, certDir, dataDir := runningBeforeRestart(t, agentapi.JobState_JOB_STATE_READING, agentapi.JobState_JOB_STATE_TRAINING)
	// A graceful stop re-queues the job; put it back as a crash leaves it:
	// still training on its agent.
	h.stop()
	db := h.openDB()
	if _, err := db.Exec(ctx, `UPDATE jobs SET state = ?, agent_id = ? WHERE id = ?`, api.StateTraining, testAgentID, j.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	h2 := startHarness(t, harnessOptions{certDir: certDir, dataDir: dataDir})
	d := h2.waitState(j.ID, api.StateQueued)
	if last := d.History[len(d.History)-1]; !strings.Contains(last.Note, "the control plane restarted while the job was training") {
		t.Errorf("last change = %+v", last)
	}
}

// TestRevokeWithoutCA: without a CA key, enrollment answers 501, and an
// agent with a certificate made elsewhere can still be revoked: its session
// ends and its next connection is refused at the handshake.
func TestRevokeWithoutCA(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	bearer := "Bearer " + testToken
	for _, req := range []struct{ method, path, token, body string }{
		{"POST", api.PathEnrollments, bearer, `{"agent_id":"a","tenant":"t"}`},
		{"POST", api.PathEnroll, "", `{"token":"fet_x","csr":""}`},
		{"GET", api.PathCRL, "", ""},
	} {
		if code, body := h.do(req.method, req.path, req.token, req.body); code != http.StatusNotImplemented || !strings.Contains(body, "ca_key") {
			t.Errorf("%s %s: %d %s; want 501 naming ca_key", req.method, req.path, code, body)
		}
	}
	if code, _ := h.do("POST", api.PathAgents+"/"+testAgentID+"/revoke", "", `{}`); code != http.StatusUnauthorized {
		t.Fatalf("revoke without the bearer token: %d", code)
	}
	a := h.connectAgent(true)
	code, body := h.do("POST", api.PathAgents+"/"+testAgentID+"/revoke", bearer, `{"reason":"test"}`)
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if err := a.recvErr(); err == nil {
		t.Fatal("the revoked agent's session did not end")
	}
	cfg, err := pki.DevFiles(h.certDir, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// TLS 1.3 ends the client's handshake before the server checks its
	// certificate: the client sees the server's alert, or, when it writes
	// first, the closed connection. The server's log says which it was.
	err = h.helloWith(cfg)
	if msg := fmt.Sprint(err); status.Code(err) != codes.Unavailable ||
		!(strings.Contains(msg, "bad certificate") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset")) {
		t.Fatalf("next connection of the revoked agent: %v, want refused at the handshake", err)
	}
	if !strings.Contains(h.logs.String(), "revoked agent refused") {
		t.Error("the refusal was not logged")
	}
}
