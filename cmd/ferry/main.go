// Command ferry is Ferry's command-line tool: it makes the demo warehouse and
// development certificates, inspects and reads warehouses through the
// connectors, submits and follows jobs through the control plane's API, and
// runs the all-in-one demo.
//
// Exit codes: 0 success, 1 failure, 2 bad input (one line on stderr).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/secrets"
)

func main() { cli.Main("ferry", run, isUsage) }

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"demo-data":   {"write the deterministic e-commerce demo warehouse", runDemoData},
		"dev":         {"development helpers: dev certs <dir>", runDev},
		"tables":      {"list a warehouse's tables with keys and time columns", runTables},
		"read":        {"read a table as CSV, JSON lines, Arrow or Parquet", runRead},
		"copy":        {"stream a table from one warehouse into another", runCopy},
		"jobs":        {"submit, follow, list, cancel jobs and print their logs: jobs submit|status|list|cancel|logs", runJobs},
		"tokens":      {"create, list and revoke your API tokens: tokens create|list|revoke", runTokens},
		"connections": {"the tenant's warehouse connections (no credentials): connections list|create|delete", runConnections},
		"queries":     {"the tenant's saved predictive queries: queries list|create|delete|run", runQueries},
		"graphs":      {"the schema graph queries are planned against: graphs show [--json]", runGraphs},
		"agents":      {"list agents, issue enrollment tokens, revoke: agents list|enroll|revoke", runAgents},
		"pql":         {"check a predictive query against a warehouse's graph: pql check", runPQL},
		"demo":        {"run the all-in-one demo on the embedded DuckDB warehouse", runDemo},
		"grants":      {"print the statements or policy that give the agent least privilege", runGrants},
		"check":       {"preflight: can the agent's credentials do the job, and nothing more?", runCheck},
		"agent":       {"agent check: the same as check", runAgent},
		"audit":       {"verify or export the control plane's audit log: audit verify|export", runAudit},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ferry <command> [flags] [arguments]\n\nCommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ferry <command> --help' for a command's flags.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return cli.Usagef("no command given")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	c, ok := commands()[args[0]]
	if !ok {
		return cli.Usagef("unknown command %q (see ferry --help)", args[0])
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// isUsage classifies errors from the libraries that are the user's input.
func isUsage(err error) bool {
	var se *apiclient.StatusError
	if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 {
		return true
	}
	return errors.Is(err, connectors.ErrNotFound) || errors.Is(err, connectors.ErrInvalidName) ||
		errors.Is(err, connectors.ErrInvalidURL) || errors.Is(err, connectors.ErrInvalidArgument)
}

// connectorMux returns the connectors the CLI knows: all of them.
func connectorMux() *connectors.Mux { return all.Mux() }

// openWarehouse opens a connector URL; a URL the drivers refuse is bad input.
func openWarehouse(ctx context.Context, url string) (*connectors.Conn, error) {
	return openWarehouseWith(ctx, url, "")
}

// openWarehouseWith opens a connector URL with the credentials in a YAML file
// (a map of names to strings: user, password, access_key_id, …). The file
// must not be readable by group or others; its values are never printed.
func openWarehouseWith(ctx context.Context, url, credentialsFile string) (*connectors.Conn, error) {
	var opts *connectors.Options
	if credentialsFile != "" {
		creds, err := secrets.LoadFile(credentialsFile)
		if err != nil {
			return nil, cli.Usage(err)
		}
		opts = &connectors.Options{Credentials: creds}
	}
	c, err := connectorMux().Open(ctx, url, opts)
	if err != nil {
		if errors.Is(err, connectors.ErrInvalidURL) || strings.Contains(err.Error(), "URL") {
			return nil, cli.Usage(err)
		}
		return nil, err
	}
	return c, nil
}
