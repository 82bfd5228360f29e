// Package agent is the customer-zone daemon. It dials out to the control
// plane (gRPC, mutual TLS 1.3) and waits for jobs; for each job it reads the
// tables the query needs from its warehouse as Arrow, streams them to the
// engine over Arrow Flight (mutual TLS 1.3), receives the predictions and
// writes them back into the warehouse atomically. It listens on no port
// (unless its operator turns on metrics_addr, on loopback by default): every
// connection to Ferry is outbound. What it reports to the control plane
// is metadata only (counts, types, metrics, states, scrubbed errors).
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/telemetry"
	"github.com/ferry-ai/ferry/secrets"
)

// Version is the agent's version, reported in Hello.
const Version = "0.1.0"

// Options carry the agent's dependencies.
type Options struct {
	// Connectors opens the warehouse; it must know the warehouse URL's scheme.
	Connectors *connectors.Mux
	// Logger receives JSON logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is the agent's metrics registry; nil makes one.
	Metrics *telemetry.Registry
}

// Agent is a configured agent.
type Agent struct {
	cfg  Config
	mux  *connectors.Mux
	log  *slog.Logger
	tls  credentials.TransportCredentials
	busy sync.Mutex // held while a job runs: one job at a time
	// egress allows connections to the control plane and the engine only.
	egress *egress
	// With enrollment: the CA bundle and the current identity.
	roots    *x509.CertPool
	identity atomic.Pointer[pki.Identity]
	// vault is signed in when the warehouse's credentials come from it.
	vault *secrets.Vault
	// metrics are served on cfg.MetricsAddr when it is set.
	metrics *agentMetrics
}

// New checks the configuration and loads the TLS material.
func New(cfg Config, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if opts.Connectors == nil {
		return nil, errors.New("agent: no connectors")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, mux: opts.Connectors, log: log.With("agent_id", cfg.AgentID)}
	reg := opts.Metrics
	if reg == nil {
		reg = telemetry.New(&telemetry.Options{Logger: a.log})
	}
	a.metrics = newAgentMetrics(reg)
	// Vault, when the credentials come from it, is the one more endpoint
	// the agent dials.
	vaultAddr := ""
	if c := cfg.Credentials; c != nil && c.Vault != nil {
		var err error
		if vaultAddr, err = vaultEndpoint(c.Vault.Address); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if cfg.Enrollment == nil {
		tlsCfg, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.tls = credentials.NewTLS(tlsCfg)
		a.egress = newEgress(cfg.ControlPlane, cfg.Engine, vaultAddr)
		return a, nil
	}
	roots, err := pki.LoadCAPool(cfg.TLS.CA)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.roots = roots
	a.egress = newEgress(cfg.ControlPlane, cfg.Engine, cfg.Enrollment.API, vaultAddr)
	// Every handshake asks the identity for its current certificate, so a
	// renewal takes effect on the next connection.
	a.tls = credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    roots,
		GetClientCertificate: func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			id := a.identity.Load()
			if id == nil {
				return nil, errors.New("agent is not enrolled")
			}
			return id.GetClientCertificate(info)
		},
	})
	return a, nil
}

// Run keeps a session with the control plane open until ctx is done,
// reconnecting with exponential backoff and jitter. It returns nil on a clean
// shutdown.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := a.listenMetrics(ctx)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if ln != nil {
		mctx, stop := context.WithCancel(ctx)
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := telemetry.ServeListener(mctx, ln, a.metrics.reg.Handler(), nil); err != nil {
				a.log.Error("metrics listener stopped", "error", err.Error())
			}
		}()
		defer func() { stop(); <-served }()
		a.log.Info("agent metrics listening", "addr", ln.Addr().String())
	}
	if err := a.openVault(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.vault != nil {
		defer a.vault.Close()
	}
	if a.cfg.Enrollment != nil {
		if err := a.setupIdentity(ctx); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go a.renewLoop(rctx)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0
	b.RandomizationFactor = 0.5
	for {
		started := time.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			a.log.Info("agent stopped")
			return nil
		}
		if time.Since(started) > time.Minute {
			b.Reset()
		}
		wait := b.NextBackOff()
		a.log.Warn("control plane session ended; reconnecting", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			a.log.Info("agent stopped")
			return nil
		case <-time.After(wait):
		}
	}
}

// session runs one control-plane stream.
func (a *Agent) session(ctx context.Context) error {
	hello, err := a.hello(ctx)
	if err != nil {
		return err
	}
	conn, err := a.egress.client(a.cfg.ControlPlane, append(a.rpcOptions(), grpc.WithTransportCredentials(a.tls))...)
	if err != nil {
		return fmt.Errorf("dial control plane %s: %w", a.cfg.ControlPlane, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentapi.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to control plane %s: %w", a.cfg.ControlPlane, err)
	}
	if err := stream.Send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("await welcome: %w", err)
	}
	if first.GetWelcome() == nil {
		return errors.New("control plane did not answer hello with welcome")
	}
	a.log.Info("connected to control plane", "addr", a.cfg.ControlPlane, "tables", len(hello.Tables))
	a.metrics.setConnected(true)
	defer a.metrics.setConnected(false)

	// One goroutine owns stream.Send.
	out := make(chan *agentapi.AgentMessage, 64)
	sendErr := make(chan error, 1)
	var running sync.Map // job id -> context.CancelFunc
	go func() {
		tick := time.NewTicker(a.cfg.Heartbeat)
		defer tick.Stop()
		for {
			var m *agentapi.AgentMessage
			select {
			case <-ctx.Done():
				return
			case m = <-out:
			case <-tick.C:
				hb := &agentapi.Heartbeat{SentUnixNanos: time.Now().UnixNano()}
				running.Range(func(k, _ any) bool { hb.RunningJobId = k.(string); return false })
				m = &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Heartbeat{Heartbeat: hb}}
			}
			if err := stream.Send(m); err != nil {
				sendErr <- err
				cancel()
				return
			}
		}
	}()
	emit := func(ev *agentapi.JobEvent) {
		ev.AtUnixNanos = time.Now().UnixNano()
		select {
		case out <- &agentapi.AgentMessage{Msg: &agentapi.AgentMessage_JobEvent{JobEvent: ev}}:
		case <-ctx.Done():
		}
	}
	var jobs sync.WaitGroup
	defer jobs.Wait()
	for {
		m, err := stream.Recv()
		if err != nil {
			cancel()
			select {
			case serr := <-sendErr:
				return fmt.Errorf("send: %w", serr)
			default:
			}
			if errors.Is(err, io.EOF) {
				return errors.New("control plane closed the stream")
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch msg := m.Msg.(type) {
		case *agentapi.ControlMessage_Assignment:
			asg := msg.Assignment
			if !a.busy.TryLock() {
				a.log.Warn("assignment refused: a job is running", "job_id", asg.JobId)
				a.metrics.jobEnded(outcomeRefused)
				emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_FAILED,
					Detail: &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: "agent", Message: "agent is busy with another job"}}})
				continue
			}
			jctx, jcancel := context.WithCancel(ctx)
			running.Store(asg.JobId, jcancel)
			jobs.Add(1)
			go func() {
				defer jobs.Done()
				final := a.runJob(jctx, asg, emit)
				jcancel()
				running.Delete(asg.JobId)
				// Free for the next job before saying this one ended: the
				// control plane assigns the next at once.
				a.busy.Unlock()
				emit(final)
			}()
		case *agentapi.ControlMessage_Cancel:
			if c, ok := running.Load(msg.Cancel.JobId); ok {
				a.log.Info("job cancel requested", "job_id", msg.Cancel.JobId)
				c.(context.CancelFunc)()
			}
		case *agentapi.ControlMessage_Welcome:
		}
	}
}

// hello lists the warehouse's tables (metadata only) for the Hello message.
func (a *Agent) hello(ctx context.Context) (*agentapi.Hello, error) {
	w, err := a.openWarehouse(ctx, a.log)
	if err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	defer func() { _ = w.Close(context.WithoutCancel(ctx)) }()
	wh, err := w.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tables, err := wh.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("list warehouse tables: %w", err)
	}
	h := &agentapi.Hello{ProtocolVersion: link.ProtocolVersion, AgentId: a.cfg.AgentID, Version: Version, WarehouseKind: wh.Scheme()}
	for _, t := range tables {
		tm := &agentapi.TableMeta{Name: t.Name, PrimaryKey: t.PrimaryKey, TimeColumn: t.TimeColumn}
		for _, c := range t.Columns {
			tm.Columns = append(tm.Columns, &agentapi.Column{Name: c.Name, Type: c.Type, Nullable: c.Nullable})
		}
		for _, fk := range t.ForeignKeys {
			tm.ForeignKeys = append(tm.ForeignKeys, &agentapi.ForeignKey{Columns: fk.Columns, RefTable: fk.RefTable, RefColumns: fk.RefColumns})
		}
		h.Tables = append(h.Tables, tm)
	}
	return h, nil
}
