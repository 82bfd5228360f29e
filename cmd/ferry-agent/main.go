// Command ferry-agent runs Ferry's agent in the customer's network. It dials
// out to the control plane and the engine (never listening itself), reads the
// warehouse and writes predictions back.
//
// Usage:
//
//	ferry-agent --config /etc/ferry/agent.yaml
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"runtime/debug"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/internal/cli"
)

func main() { cli.Main("ferry-agent", run, nil) }

const usage = `Usage: ferry-agent --config FILE

Runs the Ferry agent. Configuration keys (YAML):
  agent_id, control_plane, engine, warehouse, tls: {cert, key, ca},
  enrollment: {api, token_file, state_dir} (instead of tls.cert and tls.key:
  enroll once with a one-time token, renew before expiry), heartbeat,
  batch_rows, window_batches, window_bytes, resume_timeout,
  compression (none, lz4 or zstd), gc_percent, log_level,
  metrics_addr (serve /metrics, /healthz and /readyz over HTTP there; a
  loopback address unless metrics_allow_non_loopback: true; empty: off),
  credentials: {vault: {address, ca_cert, auth: {method (approle,
  kubernetes or token), mount, role_id, secret_id_file, role, jwt_file,
  token_file}}, database: {mount, role} | kv: {mount, path}}, or, for
  development only with --dev, credentials: {file: creds.yaml}

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry-agent", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration `file` (required)")
	logLevel := fs.String("log-level", "", "override the configured log level")
	dev := fs.Bool("dev", false, "allow development-only settings (credentials.file); never in production")
	if err := cli.Parse(fs, args, usage, stdout); err != nil {
		return cli.Done(err)
	}
	if *configPath == "" || fs.NArg() > 0 {
		return cli.Usagef("--config FILE is required and no arguments are taken (see --help)")
	}
	cfg, err := agent.LoadConfigDev(*configPath, *dev)
	if err != nil {
		return cli.Usage(err)
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	log, err := cli.Logger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	a, err := agent.New(cfg, agent.Options{Connectors: all.Mux(), Logger: log})
	if err != nil {
		return cli.Usage(err)
	}
	return a.Run(ctx)
}
