package controlplane_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

const (
	testToken   = "test-token-0123456789abcdef"
	testAgentID = "agent-1"
)

// refPattern finds table.column references in the test planner's queries.
var refPattern = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*|\*)`)

// testPlanner is a stand-in for the PQL planner: a query starts with PREDICT
// and every table.column it mentions must exist.
func testPlanner(query string, g *graph.Graph) ([]string, error) {
	if !strings.HasPrefix(query, "PREDICT ") {
		return nil, errors.New("line 1, col 1: expected PREDICT")
	}
	var tables []string
	for _, m := range refPattern.FindAllStringSubmatch(query, -1) {
		t, ok := g.Table(m[1])
		if !ok {
			return nil, &graph.NotFoundError{Kind: "table", Name: m[1], Nearest: graph.Nearest(m[1], g.TableNames())}
		}
		if m[2] != "*" {
			if _, ok := t.Column(m[2]); !ok {
				return nil, &graph.NotFoundError{Kind: "column", Name: m[2], Table: m[1], Nearest: graph.Nearest(m[2], t.ColumnNames())}
			}
		}
		if !contains(tables, m[1]) {
			tables = append(tables, m[1])
		}
	}
	return tables, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// testTables is the schema the test agent reports.
func testTables() []*agentapi.TableMeta {
	return []*agentapi.TableMeta{
		{
			Name: "customers",
			Columns: []*agentapi.Column{
				{Name: "customer_id", Type: "int64"},
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

const testQuery = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"

// harness is a running control plane with dev certificates.
type harness struct {
	srv      *controlplane.Server
	t        *testing.T
	certDir  string
	dataDir  string
	apiURL   string
	agentAdr string
	client   *apiclient.Client
	http     *http.Client
	logs     *syncbuf.Buffer
	cancel   context.CancelFunc
	done     chan error
}

type harnessOptions struct {
	dataDir   string
	certDir   string
	heartbeat time.Duration
	sealer    controlplane.FieldSealer // nil: metadata stored in plaintext
	// sqlite keeps the metadata in SQLite even when the suite runs on
	// PostgreSQL, for tests that read the database file itself.
	sqlite bool
	// attempts is Config.JobAttempts (0: the default).
	attempts int
	// enroll turns enrollment on with the dev CA's key.
	enroll bool
	// signInLinks turns one-time sign-in links on (auth.signin_links).
	signInLinks bool
	// noFiles is Config.DisableFileConnections.
	noFiles bool
}

// pgSchemas maps a data directory to its PostgreSQL schema's URL when the
// suite runs on PostgreSQL (FERRY_TEST_METADB=postgres): a control plane
// restarted on the same data directory finds its metadata again.
var pgSchemas sync.Map

func startHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, certDir: o.certDir, dataDir: o.dataDir, logs: &syncbuf.Buffer{}}
	if h.certDir == "" {
		h.certDir = t.TempDir()
		if err := pki.DevCerts(h.certDir, testAgentID, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if h.dataDir == "" {
		h.dataDir = t.TempDir()
	}
	if o.heartbeat == 0 {
		o.heartbeat = 300 * time.Millisecond
	}
	cfg := controlplane.Config{
		DataDir:                h.dataDir,
		APIAddr:                "127.0.0.1:0",
		AgentAddr:              "127.0.0.1:0",
		TLS:                    pki.DevFiles(h.certDir, "controlplane"),
		APIToken:               testToken,
		Planner:                controlplane.PlannerFunc(testPlanner),
		Logger:                 slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatInterval:      o.heartbeat,
		ShutdownTimeout:        3 * time.Second,
		Sealer:                 o.sealer,
		JobAttempts:            o.attempts,
		DisableFileConnections: o.noFiles,
	}
	if o.enroll {
		cfg.CAKey = filepath.Join(h.certDir, pki.CAKeyFile)
	}
	if o.signInLinks {
		cfg.Auth = &auth.Config{SignInLinks: true}
	}
	if metadbtest.FromEnv() == metadb.Postgres && !o.sqlite {
		u, ok := pgSchemas.Load(h.dataDir)
		if !ok {
			u = metadbtest.PostgresSchema(t)
			pgSchemas.Store(h.dataDir, u)
		}
		cfg.MetadataDB = u.(string)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := controlplane.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.srv = srv
	apiAddr, agentAddr := srv.Addrs()
	h.apiURL = "https://" + apiAddr.String()
	h.agentAdr = agentAddr.String()
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() {
		err := srv.Serve(ctx)
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
		h.done <- err
	}()
	t.Cleanup(func() { h.stop() })

	pool, err := pki.LoadCAPool(pki.DevFiles(h.certDir, "controlplane").CA)
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = apiclient.New(h.apiURL, testToken, pool)
	if err != nil {
		t.Fatal(err)
	}
	h.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}
	return h
}

// stop shuts the control plane down and checks it exited cleanly.
func (h *harness) stop() {
	if h.done == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("control plane did not stop within 10s")
	}
	h.done = nil
}

// openDB opens the harness's metadata database (after stop, to change or
// read what the control plane left).
func (h *harness) openDB() *metadb.DB {
	h.t.Helper()
	target := filepath.Join(h.dataDir, controlplane.DBFile)
	if u, ok := pgSchemas.Load(h.dataDir); ok {
		target = u.(string)
	}
	db, err := metadb.Open(context.Background(), target)
	if err != nil {
		h.t.Fatal(err)
	}
	return db
}

// do sends a raw API request and returns the status and body.
func (h *harness) do(method, path, token, body string) (int, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.apiURL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitState polls a job until it reaches want.
func (h *harness) waitState(id string, want api.JobState) *api.JobDetail {
	h.t.Helper()
	return waitFor(h.t, h.client, id, want)
}

// testAgent is a gRPC client speaking the agent protocol.
type testAgent struct {
	t      *testing.T
	stream agentapi.AgentService_ConnectClient
	cancel context.CancelFunc
	sendMu sync.Mutex
	in     chan *agentapi.ControlMessage
	err    chan error
}

// dialAgent opens a Connect stream presenting the named dev identity's
// certificate (empty name: no client certificate).
func (h *harness) dialAgent(identity string) *testAgent {
	h.t.Helper()
	var tlsCfg *tls.Config
	if identity == "" {
		pool, err := pki.LoadCAPool(pki.DevFiles(h.certDir, "controlplane").CA)
		if err != nil {
			h.t.Fatal(err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	} else {
		var err error
		tlsCfg, err = pki.DevFiles(h.certDir, identity).ClientConfig()
		if err != nil {
			h.t.Fatal(err)
		}
	}
	return h.dialAgentTLS(tlsCfg)
}

// dialAgentTLS opens a Connect stream with a client TLS configuration.
func (h *harness) dialAgentTLS(tlsCfg *tls.Config) *testAgent {
	h.t.Helper()
	cc, err := grpc.NewClient(h.agentAdr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := agentapi.NewAgentServiceClient(cc).Connect(ctx)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	a := &testAgent{t: h.t, stream: stream, cancel: cancel, in: make(chan *agentapi.ControlMessage, 16), err: make(chan error, 1)}
	h.t.Cleanup(cancel)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				a.err <- err
				close(a.in)
				return
			}
			a.in <- m
		}
	}()
	return a
}

// helloWith opens a Connect stream with cfg, sends Hello and reads the
// answer; it returns the first error (a refused handshake surfaces here).
func (h *harness) helloWith(cfg *tls.Config) error {
	h.t.Helper()
	cc, err := grpc.NewClient(h.agentAdr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := agentapi.NewAgentServiceClient(cc).Connect(ctx)
	if err == nil {
		if err = stream.Send(hello(testAgentID)); err == nil {
			_, err = stream.Recv()
		}
	}
	return err
}

func hello(agentID string) *agentapi.AgentMessage {
	return &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Hello{Hello: &agentapi.Hello{
		ProtocolVersion: 1, AgentId: agentID, Version: "test", WarehouseKind: "duckdb", Tables: testTables(),
	}}}
}

// connectAgent dials as the dev agent, says Hello, expects Welcome and, when
// heartbeat is set, keeps sending heartbeats.
func (h *harness) connectAgent(heartbeat bool) *testAgent {
	h.t.Helper()
	a := h.dialAgent("agent")
	a.send(hello(testAgentID))
	m := a.recv()
	if m.GetWelcome().GetProtocolVersion() != 1 || m.GetWelcome().GetHeartbeatIntervalMillis() <= 0 {
		h.t.Fatalf("first control message = %v, want Welcome", m)
	}
	if heartbeat {
		a.heartbeat()
	}
	return a
}

// heartbeat sends heartbeats every 50 ms until the stream ends.
func (a *testAgent) heartbeat() {
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-a.stream.Context().Done():
				return
			case <-t.C:
				a.sendMu.Lock()
				err := a.stream.Send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Heartbeat{Heartbeat: &agentapi.Heartbeat{SentUnixNanos: time.Now().UnixNano()}}})
				a.sendMu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
}

// succeed reports a job through every running state to success.
func (a *testAgent) succeed(job string) {
	for _, st := range []agentapi.JobState{agentapi.JobState_JOB_STATE_READING, agentapi.JobState_JOB_STATE_TRAINING, agentapi.JobState_JOB_STATE_WRITING, agentapi.JobState_JOB_STATE_SUCCEEDED} {
		a.event(job, st, nil)
	}
}

func (a *testAgent) send(m *agentapi.AgentMessage) {
	a.t.Helper()
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if err := a.stream.Send(m); err != nil {
		a.t.Fatalf("agent send: %v", err)
	}
}

// recv returns the next control message, failing the test if the stream
// ends or nothing arrives in 10s.
func (a *testAgent) recv() *agentapi.ControlMessage {
	a.t.Helper()
	select {
	case m, ok := <-a.in:
		if !ok {
			a.t.Fatalf("stream ended: %v", <-a.err)
		}
		return m
	case <-time.After(10 * time.Second):
		a.t.Fatal("no control message within 10s")
	}
	return nil
}

// recvErr waits for the stream to end and returns its error.
func (a *testAgent) recvErr() error {
	a.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-a.in:
			if !ok {
				return <-a.err
			}
		case <-deadline:
			a.t.Fatal("stream did not end within 10s")
		}
	}
}

func (a *testAgent) event(job string, state agentapi.JobState, setDetail func(*agentapi.JobEvent)) {
	a.t.Helper()
	ev := &agentapi.JobEvent{JobId: job, State: state, AtUnixNanos: time.Now().UnixNano()}
	if setDetail != nil {
		setDetail(ev)
	}
	a.send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_JobEvent{JobEvent: ev}})
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func errorBody(t *testing.T, s string) string {
	t.Helper()
	return decodeJSON[api.Error](t, s).Error
}

func pkiDevCerts(dir string) error { return pki.DevCerts(dir, testAgentID, time.Hour) }
