// Command loadtest runs the control plane's load test (package
// internal/loadtest) and prints its table:
//
//	go run ./internal/loadtest/cmd/loadtest -agents 1000 -jobs 100
//
// It exits 1 when the run could not be set up, counted an error or a job
// that did not succeed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-ai/ferry/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	var cfg loadtest.Config
	flag.IntVar(&cfg.Agents, "agents", loadtest.DefaultAgents, "simulated agents, each with its own certificate and connection")
	flag.IntVar(&cfg.Jobs, "jobs", loadtest.DefaultJobs, "jobs submitted through the user API")
	flag.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 0, "the control plane's heartbeat interval (0: its default, 10s)")
	flag.DurationVar(&cfg.Idle, "idle", 0, "heartbeats only, between connecting and the first job (0: three heartbeat intervals)")
	flag.DurationVar(&cfg.Ramp, "ramp", 0, "spread the agents' first connections over this time (0: all at once)")
	flag.DurationVar(&cfg.JobTime, "job-time", loadtest.DefaultJobTime, "simulated work of a job")
	flag.IntVar(&cfg.Submitters, "submitters", loadtest.DefaultSubmitters, "concurrent submit calls")
	flag.StringVar(&cfg.Binary, "controlplane", "", "ferry-controlplane `binary` (empty: built from this module)")
	flag.StringVar(&cfg.Dir, "dir", "", "keep the run's files (log, metadata DB, certificates) in `dir`")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "the control plane's log level")
	flag.StringVar(&cfg.ControlPlaneYAML, "controlplane-yaml", "", "YAML appended to the control plane's configuration, e.g. 'metadata_db: postgres://…'")
	flag.BoolVar(&cfg.GoroutineDump, "goroutines", true, "stop the control plane with SIGQUIT and count its goroutines (false: SIGTERM, checked to exit cleanly)")
	flag.Parse()
	cfg.Progress = os.Stderr

	r, err := loadtest.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := r.WriteTable(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if r.Errors > 0 || r.NotSucceeded > 0 {
		return 1
	}
	return 0
}
