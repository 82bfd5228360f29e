// Command ferry-controlplane runs Ferry's control plane: the user API, the
// agent RPC server, the scheduler and the metadata database.
//
// Usage:
//
//	ferry-controlplane --config /etc/ferry/controlplane.yaml
//
// Flags override the configuration file. The API token is read from the file
// named by api_token_file (or --api-token-file), never from the YAML itself.
// It exits 2 on a bad flag or configuration, 1 on any other failure and 0
// after SIGINT or SIGTERM.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/secrets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage: ferry-controlplane [--config FILE] [flags]

Runs the Ferry control plane. Configuration keys (YAML):
  data_dir, api_addr, agent_addr, tls: {cert, key, ca}, api_token_file,
  ca_key (the CA's key: turns on agent enrollment, renewal and the
  revocation list), agent_cert_validity, heartbeat_interval, job_attempts, log_level,
  encryption: {vault: {address, ca_cert, auth: {method, ...}}, transit_mount,
  key, cache_ttl} (customer-managed key: the sensitive metadata fields are
  sealed under data keys wrapped by this Transit key)
Flags override the file.

Flags:
`

// run parses args, loads the configuration and runs the control plane until
// ctx is done; it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry-controlplane", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		configPath = fs.String("config", "", "YAML configuration `file`")
		dataDir    = fs.String("data-dir", "", "directory of the metadata database")
		apiAddr    = fs.String("api-addr", "", "user API listen `address` (HTTPS)")
		agentAddr  = fs.String("agent-addr", "", "agent RPC listen `address` (gRPC, mutual TLS)")
		tlsCert    = fs.String("tls-cert", "", "server certificate `file`")
		tlsKey     = fs.String("tls-key", "", "server key `file`")
		tlsCA      = fs.String("tls-ca", "", "CA bundle `file` verifying agent certificates")
		tokenFile  = fs.String("api-token-file", "", "`file` holding the user API bearer token")
		caKey      = fs.String("ca-key", "", "CA private key `file` (enables agent enrollment)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "ferry-controlplane: %v (see --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry-controlplane: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}

	var fc controlplane.FileConfig
	if *configPath != "" {
		var err error
		if fc, err = controlplane.LoadFileConfig(*configPath); err != nil {
			fmt.Fprintf(stderr, "ferry-controlplane: %v\n", err)
			return 2
		}
	}
	override := map[string]func(string){
		"data-dir":       func(v string) { fc.DataDir = v },
		"api-addr":       func(v string) { fc.APIAddr = v },
		"agent-addr":     func(v string) { fc.AgentAddr = v },
		"tls-cert":       func(v string) { fc.TLS.Cert = v },
		"tls-key":        func(v string) { fc.TLS.Key = v },
		"tls-ca":         func(v string) { fc.TLS.CA = v },
		"api-token-file": func(v string) { fc.APITokenFile = v },
		"ca-key":         func(v string) { fc.CAKey = v },
		"log-level":      func(v string) { fc.LogLevel = v },
	}
	values := map[string]*string{"data-dir": dataDir, "api-addr": apiAddr, "agent-addr": agentAddr, "tls-cert": tlsCert,
		"tls-key": tlsKey, "tls-ca": tlsCA, "api-token-file": tokenFile, "ca-key": caKey, "log-level": logLevel}
	fs.Visit(func(f *flag.Flag) {
		if set, ok := override[f.Name]; ok {
			set(*values[f.Name])
		}
	})

	level, err := controlplane.ParseLogLevel(fc.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "ferry-controlplane: %v\n", err)
		return 2
	}
	token, err := controlplane.ReadTokenFile(fc.APITokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "ferry-controlplane: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	var sealer controlplane.FieldSealer
	if fc.Encryption != nil {
		k, v, err := controlplane.OpenSealer(ctx, *fc.Encryption, logger)
		if err != nil {
			if errors.Is(err, controlplane.ErrConfig) {
				fmt.Fprintf(stderr, "ferry-controlplane: %v\n", err)
				return 2
			}
			logger.LogAttrs(context.Background(), slog.LevelError, "control plane failed", slog.String("error", err.Error()))
			return 1
		}
		defer v.Close()
		sealer = k
		mount := cmp.Or(fc.Encryption.TransitMount, "transit")
		logger.LogAttrs(ctx, slog.LevelInfo, "metadata fields sealed under the customer-managed key",
			slog.String("transit_mount", mount), slog.String("key", fc.Encryption.Key), slog.Duration("cache_ttl", cmp.Or(fc.Encryption.CacheTTL, secrets.DefaultKeyCacheTTL)))
	}
	var auditKey []byte
	if fc.AuditKeyFile != "" {
		st, err := os.Stat(fc.AuditKeyFile)
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			err = fmt.Errorf("mode %v: want 0600 or stricter", st.Mode().Perm())
		}
		if err == nil {
			auditKey, err = os.ReadFile(fc.AuditKeyFile)
		}
		if err == nil && len(auditKey) < 32 {
			err = fmt.Errorf("%d bytes: want at least 32", len(auditKey))
		}
		if err != nil {
			fmt.Fprintf(stderr, "ferry-controlplane: audit_key_file %s: %v\n", fc.AuditKeyFile, err)
			return 2
		}
	}
	err = controlplane.Run(ctx, controlplane.Config{
		DataDir:                fc.DataDir,
		MetadataDB:             fc.MetadataDB,
		APIAddr:                fc.APIAddr,
		AgentAddr:              fc.AgentAddr,
		TLS:                    fc.TLS,
		APIToken:               token,
		Planner:                pqlPlanner{},
		Logger:                 logger,
		HeartbeatInterval:      fc.HeartbeatInterval,
		JobAttempts:            fc.JobAttempts,
		DisableFileConnections: fc.DisableFileConnections,
		CAKey:                  fc.CAKey,
		AgentCertValidity:      fc.AgentCertValidity,
		Sealer:                 sealer,
		Auth:                   fc.Auth,
		AuditKey:               auditKey,
		AuditRetention:         fc.AuditRetention,
	})
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		return 0
	case errors.Is(err, controlplane.ErrConfig):
		fmt.Fprintf(stderr, "ferry-controlplane: %v\n", err)
		return 2
	default:
		logger.LogAttrs(context.Background(), slog.LevelError, "control plane failed", slog.String("error", err.Error()))
		return 1
	}
}
