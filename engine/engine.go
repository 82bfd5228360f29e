// Package engine is Ferry's training engine: an Arrow Flight server, reached
// only over mutual TLS 1.3, that holds each job's tables in memory (package
// jobstore), trains and scores on them (package train) and purges them when
// the job ends. It never writes job data to disk and never talks to a
// warehouse or the control plane: the agent drives it (package link
// documents the flow).
package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"

	"github.com/ferry-ai/ferry/engine/jobstore"
	"github.com/ferry-ai/ferry/internal/flightcodec"
	"github.com/ferry-ai/ferry/internal/grpcrecover"
	"github.com/ferry-ai/ferry/internal/pki"
)

// Config configures the engine.
type Config struct {
	// Addr is the Flight listen address, e.g. "127.0.0.1:8815".
	Addr string
	// TLS holds the engine's certificate and the CA that signs agents'.
	TLS pki.Files
	// QuotaBytes is the default per-job memory quota (0: 4 GiB).
	QuotaBytes int64
	// MaxQuotaBytes caps what a job may ask for (0: QuotaBytes).
	MaxQuotaBytes int64
	// JobTTL bounds a job's life (0: 1 hour).
	JobTTL time.Duration
	// Threads used by training (0: 2).
	Threads int
	// MaxRounds caps boosting rounds (0: the trainer's default).
	MaxRounds int
	// Device is XGBoost's device, "cpu" or "cuda" ("": cpu).
	Device string
	// WatchDirs are checked for files written while a job lives (reported in
	// its purge attestation); nil means the working directory and TMPDIR.
	WatchDirs []string
	// Logger receives JSON logs; nil means slog.Default().
	Logger *slog.Logger
	// CRLURL, when set, is the control plane's revocation list, fetched at
	// start and every CRLRefresh (0: 30 s); agents whose certificate is on
	// it are refused at the handshake, and every agent is refused while no
	// current list is held (fail closed).
	CRLURL     string
	CRLRefresh time.Duration
	// MetricsAddr, when set, is the listen address of /metrics, /healthz
	// and /readyz (HTTPS with the engine's certificate, no client
	// certificate asked for); "" serves none.
	MetricsAddr string
}

// Server is a running engine.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  *jobstore.Store
	grpc   *grpc.Server
	lis    net.Listener
	tlsCfg *tls.Config
	// bodies recycles the buffers received Arrow bodies are decoded into.
	bodies *flightcodec.BodyPool
	// revocations is followed from CRLURL (nil without one).
	revocations *pki.Revocations
	crlClient   *http.Client
	// metrics, and their listener (nil without Config.MetricsAddr).
	metrics    *engineMetrics
	metricsLn  net.Listener
	metricsTLS *tls.Config
}

// New prepares an engine and binds its listener.
func New(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tlsCfg, err := cfg.TLS.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	watch := cfg.WatchDirs
	if watch == nil {
		watch = []string{os.TempDir()}
		if wd, err := os.Getwd(); err == nil {
			watch = append(watch, wd)
		}
	}
	store := jobstore.New(jobstore.Config{
		DefaultQuota: cfg.QuotaBytes, MaxQuota: cfg.MaxQuotaBytes, TTL: cfg.JobTTL, WatchDirs: watch,
	})
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("engine: listen %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, log: log, store: store, lis: lis, tlsCfg: tlsCfg, bodies: &flightcodec.BodyPool{}}
	if cfg.CRLURL != "" {
		if err := s.followRevocations(); err != nil {
			lis.Close()
			return nil, err
		}
	}
	s.metrics = s.newMetrics()
	if err := s.listenMetrics(); err != nil {
		lis.Close()
		return nil, err
	}
	framePool := &flightcodec.ZeroingBufferPool{}
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		// FlightData bodies are decoded in one copy into recycled buffers,
		// and gRPC's frame buffers are zeroed as soon as it is done with
		// them (not when it reuses them).
		grpc.ForceServerCodecV2(flightcodec.Codec{Bodies: s.bodies, Pool: framePool}),
		experimental.BufferPool(framePool),
		grpc.ChainUnaryInterceptor(s.metrics.rpcErrors.UnaryServer(), grpcrecover.Unary(log)),
		grpc.ChainStreamInterceptor(s.metrics.rpcErrors.StreamServer(), grpcrecover.Stream(log)),
		grpc.MaxRecvMsgSize(64<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	flight.RegisterFlightServiceServer(s.grpc, &flightService{s: s})
	return s, nil
}

// Addr returns the bound listen address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Serve serves until ctx is done, then stops, purging every live job.
func (s *Server) Serve(ctx context.Context) error {
	if s.revocations != nil {
		fctx, stop := context.WithCancel(ctx)
		defer stop()
		refresh := s.cfg.CRLRefresh
		if refresh <= 0 {
			refresh = 30 * time.Second
		}
		go s.revocations.Follow(fctx, s.crlClient, s.cfg.CRLURL, refresh, s.log)
	}
	// The metrics listener stops with the engine.
	mctx, stopMetrics := context.WithCancel(ctx)
	metricsDone := s.serveMetrics(mctx)
	defer metricsDone()
	defer stopMetrics()
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	s.log.Info("engine listening", "addr", s.lis.Addr().String(), "tls_min", "1.3", "client_auth", "required")
	// The janitor runs often enough to purge an expired job within a
	// quarter of its TTL.
	ttl := s.cfg.JobTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	tick := time.NewTicker(min(30*time.Second, max(ttl/4, 10*time.Millisecond)))
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			s.purgeAll("shutdown")
			if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("engine: serve: %w", err)
			}
			return nil
		case <-tick.C:
			for _, att := range s.store.Expire() {
				s.purged(att)
				s.log.Info("job purged", "job_id", att.JobID, "reason", att.Reason,
					"bytes_received", att.BytesReceived, "bytes_purged", att.BytesPurged, "files_written", att.FilesWritten)
			}
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				s.grpc.Stop()
			}
			s.purgeAll("shutdown")
			s.log.Info("engine stopped")
			return nil
		}
	}
}

func (s *Server) purgeAll(reason string) {
	for _, att := range s.store.PurgeAll(reason) {
		s.purged(att)
		s.log.Info("job purged", "job_id", att.JobID, "reason", att.Reason,
			"bytes_received", att.BytesReceived, "bytes_purged", att.BytesPurged, "files_written", att.FilesWritten)
	}
}

// followRevocations makes the TLS configuration refuse agents on the
// control plane's revocation list.
func (s *Server) followRevocations() error {
	pool, err := pki.LoadCAPool(s.cfg.TLS.CA)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	data, err := os.ReadFile(s.cfg.TLS.CA)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("engine: CA bundle %s holds no PEM block", s.cfg.TLS.CA)
	}
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("engine: CA bundle %s: %w", s.cfg.TLS.CA, err)
	}
	s.revocations = pki.NewRevocations(caCert)
	s.tlsCfg.VerifyConnection = s.revocations.VerifyConnection
	s.crlClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: s.tlsCfg.Certificates},
	}}
	return nil
}

// Run starts an engine and serves until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}
