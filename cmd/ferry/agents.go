package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferry-ai/ferry/internal/cli"
)

// runAgents manages agents through the control plane: list them, issue a
// one-time enrollment token, revoke one.
func runAgents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry agents list|enroll|revoke [flags]"
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	var af apiFlags
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n  list\n  enroll --agent-id ID --tenant T [--ttl 1h] [--token-out FILE]\n  revoke <agent id> [--reason TEXT]\n", synopsis)
		return nil
	case "list":
		fs := flag.NewFlagSet("ferry agents list", flag.ContinueOnError)
		af.register(fs)
		if err := parse(fs, args[1:], "ferry agents list", stdout); err != nil {
			return done(err)
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		agents, err := c.Agents(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AGENT\tCONNECTED\tVERSION\tWAREHOUSE\tLAST SEEN\tTABLES")
		for _, a := range agents {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%d\n", a.ID, a.Connected, a.Version, a.WarehouseKind, a.LastSeen.Format(time.RFC3339), len(a.Tables))
		}
		return tw.Flush()
	case "enroll":
		fs := flag.NewFlagSet("ferry agents enroll", flag.ContinueOnError)
		af.register(fs)
		id := fs.String("agent-id", "", "the new agent's `ID` (letters, digits, '.', '_', '-')")
		tenant := fs.String("tenant", "", "the agent's `tenant` (default: yours; only the operator's token may name another): it runs that tenant's jobs only")
		ttl := fs.Duration("ttl", time.Hour, "how long the token may be used (at most 24h)")
		out := fs.String("token-out", "", "write the token to this `file` (0600) instead of stdout")
		if err := parse(fs, args[1:], "ferry agents enroll --agent-id ID [--tenant T] [--ttl 1h] [--token-out FILE]", stdout); err != nil {
			return done(err)
		}
		if *id == "" || fs.NArg() > 0 {
			return cli.Usagef("ferry agents enroll needs --agent-id and takes no arguments")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		e, err := c.CreateEnrollment(ctx, *id, *tenant, *ttl)
		if err != nil {
			return err
		}
		if *out != "" {
			if err := os.WriteFile(*out, []byte(e.Token+"\n"), 0o600); err != nil {
				return fmt.Errorf("token file: %w", err)
			}
			fmt.Fprintf(stdout, "enrollment token for agent %s (tenant %s) written to %s; valid until %s, once\n", e.AgentID, e.Tenant, *out, e.ExpiresAt.Format(time.RFC3339))
			return nil
		}
		fmt.Fprintln(stdout, e.Token)
		fmt.Fprintf(stderr, "enrollment token for agent %s (tenant %s), valid until %s, once: put it in the agent's enrollment.token_file\n", e.AgentID, e.Tenant, e.ExpiresAt.Format(time.RFC3339))
		return nil
	case "revoke":
		fs := flag.NewFlagSet("ferry agents revoke", flag.ContinueOnError)
		af.register(fs)
		reason := fs.String("reason", "", "why (kept in the control plane's log)")
		// The agent ID may come before the flags.
		rest := args[1:]
		var agentID string
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			agentID, rest = rest[0], rest[1:]
		}
		if err := parse(fs, rest, "ferry agents revoke <agent id> [--reason TEXT]", stdout); err != nil {
			return done(err)
		}
		if agentID == "" && fs.NArg() == 1 {
			agentID = fs.Arg(0)
		} else if fs.NArg() > 0 || agentID == "" {
			return cli.Usagef("ferry agents revoke takes one agent id")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		r, err := c.Revoke(ctx, agentID, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked agent %s at %s (%d certificates refused from the next connection on)\n", r.AgentID, r.RevokedAt.Format(time.RFC3339), r.Certificates)
		return nil
	default:
		return cli.Usagef("unknown agents subcommand %q (usage: %s)", args[0], synopsis)
	}
}
