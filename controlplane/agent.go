package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/catalog"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

// ProtocolVersion is the agent RPC protocol version this control plane
// speaks; an agent's Hello must carry it.
const ProtocolVersion = 1

// helloTimeout bounds the wait for an agent's first message.
const helloTimeout = 10 * time.Second

// agentService implements the agent RPC.
type agentService struct {
	agentapi.UnimplementedAgentServiceServer
	s *Server
}

// session is one agent's live Connect stream.
type session struct {
	agentID string
	// tenant is the tenant its certificate names: the session runs only
	// that tenant's jobs.
	tenant string
	graph  *graph.Graph
	// out carries control messages to the stream's send loop.
	out chan *agentapi.ControlMessage
	// kicked is closed to end the session; reason says why.
	kicked   chan struct{}
	kickOnce sync.Once
	reason   string
	// ended is closed once endSession has recorded the session's end (its
	// job re-queued, the agent marked disconnected).
	ended chan struct{}

	// seen is when the agent last heartbeated (Unix nanoseconds), written to
	// the metadata database in batches by the server's flusher.
	seen atomic.Int64

	// Guarded by Server.mu.
	job    string
	closed bool
}

// kick ends the session for reason (first reason wins).
func (ss *session) kick(reason string) {
	ss.kickOnce.Do(func() {
		ss.reason = reason
		close(ss.kicked)
	})
}

// hasTables reports whether the session's graph has every named table.
func (ss *session) hasTables(names []string) bool {
	for _, n := range names {
		if _, ok := ss.graph.Table(n); !ok {
			return false
		}
	}
	return true
}

// Connect runs one agent session: Hello, Welcome, then heartbeats and job
// events in, assignments and cancellations out.
func (a *agentService) Connect(stream agentapi.AgentService_ConnectServer) error {
	s := a.s
	ctx := stream.Context()
	peerID, ok := peerIdentity(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	cn := peerID.AgentID
	log := s.log.With(slog.String("peer_cn", cn), slog.String("tenant", peerID.Tenant))
	// A closed (or never enrolled) tenant's agent is refused.
	if _, err := s.catalog.Tenant(ctx, peerID.Tenant); errors.Is(err, catalog.ErrNotFound) {
		log.LogAttrs(ctx, slog.LevelWarn, "agent refused: unknown tenant")
		return status.Errorf(codes.PermissionDenied, "tenant %q is closed or unknown", peerID.Tenant)
	} else if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "looking up the agent's tenant failed", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "control plane could not look up the agent's tenant")
	}

	// One goroutine receives; the handler selects on what it receives.
	type received struct {
		msg *agentapi.AgentMessage
		err error
	}
	handlerDone := make(chan struct{})
	defer close(handlerDone)
	in := make(chan received)
	// When the reader last received a message: the watchdog measures
	// silence from it, not from when the session loop got round to the
	// message (a loop stalled on the database is not the agent's silence).
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())
	go func() {
		for {
			m, err := stream.Recv()
			lastRecv.Store(time.Now().UnixNano())
			select {
			case in <- received{m, err}:
			case <-handlerDone:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var first received
	timer := time.NewTimer(helloTimeout)
	select {
	case first = <-in:
		timer.Stop()
	case <-timer.C:
		log.LogAttrs(ctx, slog.LevelWarn, "agent refused: no hello")
		return status.Errorf(codes.DeadlineExceeded, "no Hello within %s", helloTimeout)
	case <-s.stopping:
		return status.Error(codes.Unavailable, "control plane shutting down")
	}
	if first.err != nil {
		if errors.Is(first.err, io.EOF) {
			return nil
		}
		return first.err
	}
	hello := first.msg.GetHello()
	g, err := checkHello(hello, cn)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "agent refused", slog.String("error", err.Error()))
		return err
	}
	if s.cfg.DisableFileConnections && catalog.IsFileKind(hello.GetWarehouseKind()) {
		log.LogAttrs(ctx, slog.LevelWarn, "agent refused: its warehouse is a file", slog.String("warehouse_kind", clip(hello.GetWarehouseKind(), maxNameLen)))
		return status.Errorf(codes.PermissionDenied, "the agent's warehouse is a %s file, and this control plane accepts customer warehouses only (disable_file_connections)", clip(hello.GetWarehouseKind(), maxNameLen))
	}
	now := time.Now()
	rec := agentRecord{ID: hello.GetAgentId(), Tenant: peerID.Tenant, Version: clip(hello.GetVersion(), maxNameLen), WarehouseKind: clip(hello.GetWarehouseKind(), maxNameLen)}
	if err := s.store.agentConnected(ctx, rec, g, now); errors.Is(err, errAgentOfOtherTenant) {
		log.LogAttrs(ctx, slog.LevelWarn, "agent refused", slog.String("error", err.Error()))
		return status.Errorf(codes.PermissionDenied, "agent %q: %v", rec.ID, err)
	} else if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "recording agent failed", slog.String("error", err.Error()))
		return status.Error(codes.Internal, "control plane could not record the agent")
	}
	ss := &session{
		agentID: rec.ID,
		tenant:  rec.Tenant,
		graph:   g,
		out:     make(chan *agentapi.ControlMessage, 16),
		kicked:  make(chan struct{}),
		ended:   make(chan struct{}),
	}
	log = s.log.With(slog.String("agent", ss.agentID))
	s.register(ss)
	reason := "connection lost"
	defer func() { s.endSession(ss, reason) }()
	s.auditAgent(ctx, ss.tenant, ss.agentID, "agent.connect", "agent/"+ss.agentID, audit.Success, map[string]string{"version": rec.Version})
	log.LogAttrs(ctx, slog.LevelInfo, "agent connected",
		slog.String("version", rec.Version), slog.String("warehouse_kind", rec.WarehouseKind), slog.Int("tables", len(g.Tables)))

	if err := stream.Send(&agentapi.ControlMessage{Msg: &agentapi.ControlMessage_Welcome{Welcome: &agentapi.Welcome{
		ProtocolVersion:         ProtocolVersion,
		HeartbeatIntervalMillis: s.cfg.HeartbeatInterval.Milliseconds(),
	}}}); err != nil {
		return err
	}
	s.wake()

	timeout := 3 * s.cfg.HeartbeatInterval
	watchdog := time.NewTicker(s.cfg.HeartbeatInterval / 2)
	defer watchdog.Stop()
	for {
		select {
		case <-s.stopping:
			reason = "control plane shut down"
			return status.Error(codes.Unavailable, "control plane shutting down")
		case <-ss.kicked:
			reason = ss.reason
			return status.Error(codes.Aborted, ss.reason)
		case <-ctx.Done():
			return ctx.Err()
		case <-watchdog.C:
			if since := time.Since(time.Unix(0, lastRecv.Load())); since > timeout {
				reason = fmt.Sprintf("no message for %s", since.Round(time.Millisecond))
				log.LogAttrs(ctx, slog.LevelWarn, "agent timed out", slog.Duration("silent", since))
				return status.Errorf(codes.DeadlineExceeded, "no heartbeat for %s", since.Round(time.Millisecond))
			}
		case m := <-ss.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case r := <-in:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) {
					reason = "agent closed the stream"
					return nil
				}
				return r.err
			}
			if err := s.handleAgentMessage(ctx, log, ss, r.msg); err != nil {
				reason = err.Error()
				return err
			}
		}
	}
}

// handleAgentMessage handles one message after Hello. It returns an error
// only for a message that ends the session.
func (s *Server) handleAgentMessage(ctx context.Context, log *slog.Logger, ss *session, m *agentapi.AgentMessage) error {
	now := time.Now()
	switch msg := m.GetMsg().(type) {
	case *agentapi.AgentMessage_Heartbeat:
		// Recorded in memory; the flusher writes last-seen times in one
		// transaction per interval, so heartbeats never wait on the
		// database or on the server's lock.
		ss.seen.Store(now.UnixNano())
		if log.Enabled(ctx, slog.LevelDebug) {
			s.mu.Lock()
			job := ss.job
			s.mu.Unlock()
			if running := msg.Heartbeat.GetRunningJobId(); running != job {
				log.LogAttrs(ctx, slog.LevelDebug, "heartbeat running job differs", slog.String("reported", running), slog.String("assigned", job))
			}
		}
	case *agentapi.AgentMessage_JobEvent:
		s.handleJobEvent(ctx, log, ss, msg.JobEvent, now)
	case *agentapi.AgentMessage_Hello:
		return status.Error(codes.InvalidArgument, "Hello sent twice on one stream")
	default:
		return status.Error(codes.InvalidArgument, "empty or unknown agent message")
	}
	return nil
}

// handleJobEvent applies a job event. A refused event (unknown job, another
// agent's job, illegal transition) is logged and dropped; the session goes on.
func (s *Server) handleJobEvent(ctx context.Context, log *slog.Logger, ss *session, ev *agentapi.JobEvent, now time.Time) {
	log = log.With(slog.String("job_id", clip(ev.GetJobId(), maxNameLen)))
	res, err := s.store.applyEvent(ctx, ss.agentID, ev, now)
	var terr *transitionError
	var oerr *ownerError
	switch {
	case errors.As(err, &terr):
		log.LogAttrs(ctx, slog.LevelWarn, "illegal job state transition refused",
			slog.String("from", string(terr.From)), slog.String("to", string(terr.To)))
		// The agent is working on a job the control plane has already
		// ended (for instance failed when an earlier session dropped):
		// tell it to stop.
		if (terr.From == api.StateFailed || terr.From == api.StateCancelled) && !terr.To.Terminal() {
			s.send(ss, &agentapi.ControlMessage{Msg: &agentapi.ControlMessage_Cancel{Cancel: &agentapi.CancelJob{JobId: terr.Job}}})
		}
		return
	case errors.As(err, &oerr):
		log.LogAttrs(ctx, slog.LevelWarn, "job event from an agent the job is not assigned to refused", slog.String("owner", oerr.Owner))
		return
	case errors.Is(err, errJobNotFound):
		log.LogAttrs(ctx, slog.LevelWarn, "job event for an unknown job refused")
		return
	case err != nil:
		log.LogAttrs(ctx, slog.LevelError, "job event not recorded", slog.String("error", err.Error()))
		return
	}
	s.transitioned(ctx, ev.GetJobId(), res.From, res.To, now)
	attrs := []slog.Attr{slog.String("from", string(res.From)), slog.String("to", string(res.To)), slog.String("detail", detailKind(ev))}
	if e := ev.GetError(); e != nil {
		// The message is stored, never logged: only its stage is.
		attrs = append(attrs, slog.String("error_stage", clip(e.GetStage(), maxNameLen)))
	}
	if res.From != res.To {
		s.auditAgent(ctx, ss.tenant, ss.agentID, "job.state", "job/"+clip(ev.GetJobId(), maxNameLen), audit.Success, map[string]string{"from": string(res.From), "to": string(res.To)})
		log.LogAttrs(ctx, slog.LevelInfo, "job state changed", attrs...)
	} else {
		log.LogAttrs(ctx, slog.LevelDebug, "job report recorded", attrs...)
	}
	if res.To.Terminal() {
		s.mu.Lock()
		if ss.job == ev.GetJobId() {
			ss.job = ""
		}
		s.mu.Unlock()
		s.wake()
	}
}

func detailKind(ev *agentapi.JobEvent) string {
	switch ev.GetDetail().(type) {
	case *agentapi.JobEvent_TableStats:
		return "table_stats"
	case *agentapi.JobEvent_Metrics:
		return "metrics"
	case *agentapi.JobEvent_Purge:
		return "purge"
	case *agentapi.JobEvent_Error:
		return "error"
	case *agentapi.JobEvent_Write:
		return "write"
	}
	return "none"
}

// register makes ss the agent's current session, ending an older one.
func (s *Server) register(ss *session) {
	s.mu.Lock()
	old := s.sessions[ss.agentID]
	s.sessions[ss.agentID] = ss
	s.mu.Unlock()
	if old != nil {
		old.kick("replaced by a newer connection from the same agent")
	}
}

// endSession tears a session down: the job in flight on it goes back to the
// queue (the agent stops its jobs when its session ends), or fails once it
// has had Config.JobAttempts attempts; the agent is marked disconnected
// unless a newer session replaced this one.
func (s *Server) endSession(ss *session, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	s.mu.Lock()
	ss.closed = true
	job := ss.job
	ss.job = ""
	current := s.sessions[ss.agentID] == ss
	if current {
		delete(s.sessions, ss.agentID)
	}
	// The agent is recorded disconnected before its job fails, so whoever
	// sees the failed job sees the disconnected agent too.
	if current {
		if err := s.store.agentDisconnected(ctx, ss.agentID, now); err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "recording disconnect failed", slog.String("agent", ss.agentID), slog.String("error", err.Error()))
		}
	}
	if job != "" {
		s.requeue(ctx, job, "agent", now, func(from api.JobState) string {
			return fmt.Sprintf("agent %q disconnected while the job was %s (%s)", ss.agentID, from, reason)
		})
	}
	s.mu.Unlock()
	if reason != reasonTenantClosed { // nothing more is recorded of a closed tenant
		s.auditAgent(ctx, ss.tenant, ss.agentID, "agent.disconnect", "agent/"+ss.agentID, audit.Success, map[string]string{"reason": clip(reason, 200)})
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "agent disconnected", slog.String("agent", ss.agentID), slog.String("reason", reason))
	close(ss.ended)
	s.wake()
}

// requeue puts a job whose agent session ended back in the queue, or fails
// it after its last attempt, and records and logs the change.
func (s *Server) requeue(ctx context.Context, job, stage string, now time.Time, why func(from api.JobState) string) {
	from, to, tenant, err := s.store.requeueRunning(ctx, job, stage, s.cfg.JobAttempts, now, why)
	if err == nil && from != "" {
		s.appendAudit(ctx, audit.Entry{Tenant: tenant, ActorKind: audit.System, Actor: "controlplane", Action: "job.state",
			Target: "job/" + job, Outcome: audit.Success, Details: map[string]string{"from": string(from), "to": string(to), "why": stage + " went away"}})
	}
	switch {
	case errors.Is(err, errJobNotFound): // deleted with its tenant
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelError, "re-queueing a job whose agent went away failed", slog.String("job_id", job), slog.String("error", err.Error()))
	case from == "":
	case to == api.StateQueued:
		s.transitioned(ctx, job, from, to, now)
		s.log.LogAttrs(ctx, slog.LevelWarn, "job re-queued: its agent went away", slog.String("job_id", job), slog.String("from", string(from)), slog.String("stage", stage))
	default:
		s.transitioned(ctx, job, from, to, now)
		s.log.LogAttrs(ctx, slog.LevelWarn, "job failed: its agent went away and it has no attempt left", slog.String("job_id", job), slog.String("from", string(from)), slog.String("stage", stage))
	}
}

// send queues a control message for a session; a session whose queue is full
// is not reading and is ended.
func (s *Server) send(ss *session, m *agentapi.ControlMessage) {
	select {
	case ss.out <- m:
	default:
		ss.kick("outbound queue full")
	}
}

// peerIdentity returns the agent identity of the stream's verified client
// certificate: its URI SAN's tenant and agent ID, or, for a certificate
// without one, its common name in DefaultTenant. It reports false when
// there is no verified certificate.
func peerIdentity(ctx context.Context) (pki.AgentIdentity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.AgentIdentity{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return pki.AgentIdentity{}, false
	}
	leaf := info.State.VerifiedChains[0][0]
	if id, err := pki.IdentityOf(leaf); err == nil {
		return id, true
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		return pki.AgentIdentity{AgentID: cn, Tenant: DefaultTenant}, true
	}
	return pki.AgentIdentity{}, false
}

// checkHello validates an agent's first message against its certificate's
// common name and converts its schema. Errors are gRPC status errors.
func checkHello(h *agentapi.Hello, cn string) (*graph.Graph, error) {
	if h == nil {
		return nil, status.Error(codes.InvalidArgument, "the first message must be Hello")
	}
	if h.GetProtocolVersion() != ProtocolVersion {
		return nil, status.Errorf(codes.InvalidArgument, "unsupported protocol version %d (this control plane speaks %d)", h.GetProtocolVersion(), ProtocolVersion)
	}
	if h.GetAgentId() == "" {
		return nil, status.Error(codes.InvalidArgument, "Hello.agent_id is empty")
	}
	if h.GetAgentId() != cn {
		return nil, status.Errorf(codes.PermissionDenied, "Hello.agent_id %q does not match the client certificate's common name", clip(h.GetAgentId(), maxNameLen))
	}
	g, err := graphFromProto(h.GetTables())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Hello.tables: %v", err)
	}
	return g, nil
}

// maxTables bounds the schema an agent may report.
const maxTables = 10000

// graphFromProto converts and checks an agent's reported schema: names are
// non-empty and unique, and primary keys, time columns and foreign keys name
// columns of their table. A foreign key to a table the agent did not report
// (one its data policy hides) is kept.
func graphFromProto(tables []*agentapi.TableMeta) (*graph.Graph, error) {
	if len(tables) > maxTables {
		return nil, fmt.Errorf("%d tables reported, at most %d allowed", len(tables), maxTables)
	}
	g := &graph.Graph{Tables: make([]graph.Table, 0, len(tables))}
	seen := map[string]bool{}
	for i, tm := range tables {
		name := tm.GetName()
		if name == "" || len(name) > maxNameLen {
			return nil, fmt.Errorf("table %d: name is empty or longer than %d bytes", i, maxNameLen)
		}
		if seen[name] {
			return nil, fmt.Errorf("table %q reported twice", name)
		}
		seen[name] = true
		t := graph.Table{Name: name, TimeColumn: tm.GetTimeColumn(), PrimaryKey: tm.GetPrimaryKey()}
		cols := map[string]bool{}
		for j, c := range tm.GetColumns() {
			if c.GetName() == "" || len(c.GetName()) > maxNameLen {
				return nil, fmt.Errorf("table %q column %d: name is empty or longer than %d bytes", name, j, maxNameLen)
			}
			if cols[c.GetName()] {
				return nil, fmt.Errorf("table %q: column %q reported twice", name, c.GetName())
			}
			if c.GetType() == "" {
				return nil, fmt.Errorf("table %q column %q: type is empty", name, c.GetName())
			}
			cols[c.GetName()] = true
			t.Columns = append(t.Columns, graph.Column{Name: c.GetName(), Type: clip(c.GetType(), maxNameLen), Nullable: c.GetNullable()})
		}
		for _, k := range t.PrimaryKey {
			if !cols[k] {
				return nil, fmt.Errorf("table %q: primary key column %q is not a column of the table", name, k)
			}
		}
		if t.TimeColumn != "" && !cols[t.TimeColumn] {
			return nil, fmt.Errorf("table %q: time column %q is not a column of the table", name, t.TimeColumn)
		}
		for _, fk := range tm.GetForeignKeys() {
			if len(fk.GetColumns()) == 0 || fk.GetRefTable() == "" {
				return nil, fmt.Errorf("table %q: foreign key without columns or referenced table", name)
			}
			if n := len(fk.GetRefColumns()); n != 0 && n != len(fk.GetColumns()) {
				return nil, fmt.Errorf("table %q: foreign key to %q has %d columns but %d referenced columns", name, fk.GetRefTable(), len(fk.GetColumns()), n)
			}
			for _, c := range fk.GetColumns() {
				if !cols[c] {
					return nil, fmt.Errorf("table %q: foreign key column %q is not a column of the table", name, c)
				}
			}
			t.ForeignKeys = append(t.ForeignKeys, graph.ForeignKey{Columns: fk.GetColumns(), RefTable: fk.GetRefTable(), RefColumns: fk.GetRefColumns()})
		}
		g.Tables = append(g.Tables, t)
	}
	return g, nil
}
