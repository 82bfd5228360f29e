// Command ferry-engine runs Ferry's training engine: an Arrow Flight server
// over mutual TLS 1.3 that trains and scores in memory only.
//
// Usage:
//
//	ferry-engine --config /etc/ferry/engine.yaml
package main

import (
	"context"
	"flag"
	"io"

	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/cli"
)

func main() { cli.Main("ferry-engine", run, nil) }

const usage = `Usage: ferry-engine --config FILE

Runs the Ferry engine. Configuration keys (YAML):
  addr, tls: {cert, key, ca}, quota_bytes, max_quota_bytes, job_ttl,
  threads, max_rounds, device (cpu, or cuda with a GPU build of
  libxgboost), log_level, crl_url (the control plane's
  https://host:port/v1/pki/crl: refuse revoked agents), crl_refresh,
  metrics_addr (serve /metrics, /healthz and /readyz over HTTPS there;
  empty: off)

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry-engine", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration `file` (required)")
	addr := fs.String("addr", "", "override the listen `address`")
	if err := cli.Parse(fs, args, usage, stdout); err != nil {
		return cli.Done(err)
	}
	if *configPath == "" || fs.NArg() > 0 {
		return cli.Usagef("--config FILE is required and no arguments are taken (see --help)")
	}
	fc, err := engine.LoadFileConfig(*configPath)
	if err != nil {
		return cli.Usage(err)
	}
	if *addr != "" {
		fc.Addr = *addr
	}
	log, err := cli.Logger(stderr, fc.LogLevel)
	if err != nil {
		return err
	}
	s, err := engine.New(engine.Config{
		Addr: fc.Addr, TLS: fc.TLS, QuotaBytes: fc.QuotaBytes, MaxQuotaBytes: fc.MaxQuotaBytes,
		JobTTL: fc.JobTTL, Threads: fc.Threads, MaxRounds: fc.MaxRounds, Device: fc.Device, Logger: log,
		CRLURL: fc.CRLURL, CRLRefresh: fc.CRLRefresh, MetricsAddr: fc.MetricsAddr,
	})
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}
