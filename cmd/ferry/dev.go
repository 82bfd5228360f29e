package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/pki"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "certs" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(stdout, "Usage: ferry dev certs [--agent-id ID] [--days N] <dir>")
			return nil
		}
		return cli.Usagef("usage: ferry dev certs [--agent-id ID] [--days N] <dir>")
	}
	fs := flag.NewFlagSet("ferry dev certs", flag.ContinueOnError)
	agentID := fs.String("agent-id", "agent-dev", "common name of the agent's client certificate")
	days := fs.Int("days", 30, "validity in days")
	if err := parse(fs, args[1:], "ferry dev certs [--agent-id ID] [--days N] <dir>", stdout); err != nil {
		return done(err)
	}
	if fs.NArg() != 1 {
		return cli.Usagef("ferry dev certs takes one directory argument")
	}
	if *days < 1 || *days > 3650 {
		return cli.Usagef("--days %d: want 1 to 3650", *days)
	}
	dir := fs.Arg(0)
	if err := pki.DevCerts(dir, *agentID, time.Duration(*days)*24*time.Hour); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a development CA and certificates for engine, controlplane, agent (%s) and user into %s (development only)\n", *agentID, dir)
	return nil
}
