// Package controlplane is Ferry's provider-zone service: the user API
// (HTTPS, bearer token), the agent RPC server (gRPC over mutual TLS), the
// scheduler and job state machine, and the metadata database (embedded
// SQLite).
//
// The control plane sees metadata only: schemas, counts, metrics, states and
// scrubbed error messages. No row value reaches it, its database or its logs.
package controlplane

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/catalog"
	"github.com/ferry-ai/ferry/controlplane/support"
	"github.com/ferry-ai/ferry/internal/grpcrecover"
	"github.com/ferry-ai/ferry/internal/pki"
)

// ErrServed is returned by Server.Serve when called more than once.
var ErrServed = errors.New("controlplane: server already served")

// Server is a control plane whose listeners are open. Make one with New,
// run it with Serve, release it with Close.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *store
	tokenHash [sha256.Size]byte
	// auth authenticates users (sessions, API tokens); operatorID is the
	// auth user the operator's token acts as.
	auth       *auth.Service
	operatorID string
	// audit is the tamper-evident audit log in the metadata database.
	audit *audit.Log
	// support is just-in-time support access; catalog the tenants,
	// connections and saved queries.
	support *support.Service
	catalog *catalog.Catalog

	apiLn, agentLn net.Listener
	httpSrv        *http.Server
	grpcSrv        *grpc.Server
	metrics        *cpMetrics

	// stopping is closed when Serve begins shutting down; agent sessions
	// end on it.
	stopping chan struct{}
	// poke wakes the scheduler.
	poke chan struct{}

	// mu guards sessions, every session's job and closed fields, and
	// serializes the scheduler's assignments with session teardown.
	mu       sync.Mutex
	sessions map[string]*session
	// nextAgent is the agent that got the last job: the scheduler starts
	// after it (guarded by mu).
	nextAgent string
	served    bool

	// ca signs agents' certificates and the revocation list (nil: no
	// enrollment).
	ca *pki.CA
	// revoked holds the revoked agent IDs the agent listener refuses.
	revokedMu sync.RWMutex
	revoked   map[string]bool

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the metadata database, fails jobs a previous run
// left in flight and opens both listeners. ctx bounds the start-up work only.
func New(ctx context.Context, cfg Config) (*Server, error) {
	hash, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	apiTLS, err := cfg.TLS.ServerConfigNoClientCert()
	if err != nil {
		return nil, fmt.Errorf("%w: user API: %w", ErrConfig, err)
	}
	agentTLS, err := cfg.TLS.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: agent service: %w", ErrConfig, err)
	}
	var ca *pki.CA
	if cfg.CAKey != "" {
		if ca, err = pki.LoadCA(cfg.TLS.CA, cfg.CAKey); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	st, err := openStore(ctx, cfg.DataDir, cfg.MetadataDB)
	if err != nil {
		return nil, err
	}
	st.sealer, st.log = cfg.Sealer, cfg.Logger
	s := &Server{
		ca:        ca,
		revoked:   map[string]bool{},
		cfg:       cfg,
		log:       cfg.Logger,
		store:     st,
		tokenHash: hash,
		stopping:  make(chan struct{}),
		poke:      make(chan struct{}, 1),
		sessions:  map[string]*session{},
		metrics:   newMetrics(cfg.Logger),
	}
	acfg := auth.Config{}
	if cfg.Auth != nil {
		acfg = *cfg.Auth
	}
	if acfg.Logger == nil {
		acfg.Logger = cfg.Logger
	}
	acfg.OnEvent = s.authEvent
	if s.auth, err = auth.New(ctx, st.db, acfg); err != nil {
		st.close()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if s.audit, err = audit.Open(ctx, st.db, &audit.Options{Key: cfg.AuditKey, Retention: cfg.AuditRetention}); err != nil {
		st.close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if s.support, err = support.New(ctx, st.db, support.Options{OnEvent: s.supportEvent}); err != nil {
		st.close()
		return nil, err
	}
	if s.catalog, err = catalog.Open(ctx, st.db, nil); err != nil {
		st.close()
		return nil, err
	}
	for _, t := range []string{DefaultTenant, s.supportTenant()} {
		if err := s.catalog.EnsureTenant(ctx, t, t); err != nil {
			st.close()
			return nil, err
		}
	}
	if err := s.ensureOperator(ctx); err != nil {
		st.close()
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		st.close()
		return nil, err
	}
	if err := s.loadRevocations(ctx); err != nil {
		st.close()
		return nil, err
	}
	agentTLS.VerifyConnection = s.verifyAgentConn
	var lc net.ListenConfig
	s.apiLn, err = lc.Listen(ctx, "tcp", cfg.APIAddr)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("user API: listen: %w", err)
	}
	s.agentLn, err = lc.Listen(ctx, "tcp", cfg.AgentAddr)
	if err != nil {
		s.apiLn.Close()
		st.close()
		return nil, fmt.Errorf("agent service: listen: %w", err)
	}
	s.registerTelemetry()

	s.httpSrv = &http.Server{
		Handler:           s.apiHandler(),
		TLSConfig:         apiTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(agentTLS)),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true),
		grpc.ChainUnaryInterceptor(s.metrics.rpcErrors.UnaryServer(), grpcrecover.Unary(s.log)),
		grpc.ChainStreamInterceptor(s.metrics.rpcErrors.StreamServer(), grpcrecover.Stream(s.log)),
	)
	agentapi.RegisterAgentServiceServer(s.grpcSrv, &agentService{s: s})
	return s, nil
}

// recover re-queues the jobs a previous run left assigned or running: their
// agent sessions are gone with that run, and an agent stops its jobs when
// its session ends. A job out of attempts fails.
func (s *Server) recover(ctx context.Context) error {
	if err := s.store.markAllDisconnected(ctx); err != nil {
		return err
	}
	ids, err := s.store.runningJobs(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, id := range ids {
		s.requeue(ctx, id, "controlplane", now, func(from api.JobState) string {
			return fmt.Sprintf("the control plane restarted while the job was %s", from)
		})
	}
	return nil
}

// Addrs returns the addresses the user API and the agent service listen on.
func (s *Server) Addrs() (api, agent net.Addr) {
	return s.apiLn.Addr(), s.agentLn.Addr()
}

// Serve serves the user API and the agent service until ctx is done, then
// shuts down gracefully within Config.ShutdownTimeout. It returns nil when
// ctx ended it, or the error that stopped a listener.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return ErrServed
	}
	s.served = true
	s.mu.Unlock()

	apiAddr, agentAddr := s.Addrs()
	s.log.LogAttrs(ctx, slog.LevelInfo, "control plane serving",
		slog.String("api_addr", apiAddr.String()), slog.String("agent_addr", agentAddr.String()))

	errc := make(chan error, 2)
	go func() {
		err := s.httpSrv.ServeTLS(s.apiLn, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("user API: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := s.grpcSrv.Serve(s.agentLn); err != nil {
			errc <- fmt.Errorf("agent service: %w", err)
			return
		}
		errc <- nil
	}()
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		go s.seenLoop(schedCtx)
		s.scheduleLoop(schedCtx)
	}()

	var serveErr error
	pending := 2
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		pending--
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "control plane shutting down")
	close(s.stopping)

	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.httpSrv.Shutdown(shutCtx); err != nil {
		s.httpSrv.Close()
	}
	stopped := make(chan struct{})
	go func() {
		s.grpcSrv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		s.grpcSrv.Stop()
		<-stopped
	}
	for ; pending > 0; pending-- {
		if err := <-errc; serveErr == nil {
			serveErr = err
		}
	}
	stopSched()
	<-schedDone
	if serveErr != nil {
		return serveErr
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "control plane stopped")
	return nil
}

// Close releases the listeners (if Serve did not run) and the database.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		served := s.served
		s.served = true
		s.mu.Unlock()
		if !served {
			s.apiLn.Close()
			s.agentLn.Close()
		}
		s.closeErr = s.store.close()
	})
	return s.closeErr
}

// Run starts a control plane with cfg and serves until ctx is done. A
// cancelled ctx is a clean exit (nil). Errors from an invalid cfg wrap
// ErrConfig.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	serveErr := s.Serve(ctx)
	if err := s.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}
