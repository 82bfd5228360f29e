package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/graph"
)

// runPQL checks predictive queries against a graph: a warehouse's, read
// through its connector, or a graph file (`ferry tables --json`).
func runPQL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = `ferry pql check "<query>" --graph <warehouse URL or graph file> [--credentials FILE]`
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n\nParses the query and checks it against the graph's tables, keys and time columns:\nexit 0 and a one-line summary (task type, entity, tables the engine needs), or exit 2\nand the error with its line and column.\n", synopsis)
		return nil
	case "check":
	default:
		return cli.Usagef("unknown pql subcommand %q (usage: %s)", args[0], synopsis)
	}
	fs := flag.NewFlagSet("ferry pql check", flag.ContinueOnError)
	graphArg := fs.String("graph", "", "warehouse `URL` (e.g. duckdb:///path.db) or graph file (JSON, as `ferry tables --json` prints)")
	creds := fs.String("credentials", "", "YAML `file` of warehouse credentials, with a warehouse URL")
	pos, err := parseMixed(fs, args[1:], synopsis, stdout)
	if err != nil {
		return done(err)
	}
	if len(pos) != 1 || *graphArg == "" {
		return cli.Usagef("ferry pql check takes one query and --graph (usage: %s)", synopsis)
	}
	g, err := loadGraph(ctx, *graphArg, *creds)
	if err != nil {
		return err
	}
	q, err := pql.Parse(pos[0])
	if err != nil {
		return cli.Usage(err)
	}
	task, err := q.Task(g)
	if err != nil {
		return cli.Usage(err)
	}
	fmt.Fprintf(stdout, "ok: %s for each %s.%s; tables %s: %s\n", task, q.Entity.Table, q.Entity.Column,
		strings.Join(pql.RequiredTables(q, g), ", "), q)
	return nil
}

// loadGraph reads a graph from a warehouse URL or a graph file.
func loadGraph(ctx context.Context, arg, credsFile string) (*graph.Graph, error) {
	if strings.Contains(arg, "://") {
		c, err := openWarehouseWith(ctx, arg, credsFile)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		ts, err := c.Tables(ctx)
		if err != nil {
			return nil, err
		}
		g := connectors.Graph(ts)
		return &g, nil
	}
	if credsFile != "" {
		return nil, cli.Usagef("--credentials goes with a warehouse URL, not a graph file")
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("graph file: %w", err))
	}
	var g graph.Graph
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, cli.Usage(fmt.Errorf("graph file %s: %w", arg, err))
	}
	if len(g.Tables) == 0 {
		return nil, cli.Usagef("graph file %s has no tables", arg)
	}
	return &g, nil
}
