package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/cli"
)

// runGraphs prints the schema graph queries are planned against: what the
// tenant's agent reported (tables, columns, keys, time columns; metadata
// only), as text or JSON.
func runGraphs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry graphs show [--json]"
	if len(args) == 0 || args[0] != "show" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(stdout, "Usage: %s\n  show   the tables, columns, primary and foreign keys and time columns queries are planned against\n", synopsis)
			return nil
		}
		return cli.Usagef("usage: %s", synopsis)
	}
	var af apiFlags
	fs := flag.NewFlagSet("ferry graphs show", flag.ContinueOnError)
	af.register(fs)
	asJSON := fs.Bool("json", false, "print the graph as JSON")
	if err := parse(fs, args[1:], synopsis, stdout); err != nil {
		return done(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("ferry graphs show takes no arguments")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var g api.Graph
	if err := c.Do(ctx, "GET", api.PathGraph, nil, &g); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	}
	writeGraph(stdout, g)
	return nil
}

// writeGraph prints a graph as text: a block per table.
func writeGraph(w io.Writer, g api.Graph) {
	fmt.Fprintf(w, "graph reported by agent %s: %d tables\n", g.AgentID, len(g.Tables))
	for _, t := range g.Tables {
		fmt.Fprintf(w, "\n%s", t.Name)
		if len(t.PrimaryKey) > 0 {
			fmt.Fprintf(w, "  primary key (%s)", strings.Join(t.PrimaryKey, ", "))
		}
		if t.TimeColumn != "" {
			fmt.Fprintf(w, "  time %s", t.TimeColumn)
		}
		fmt.Fprintln(w)
		for _, col := range t.Columns {
			null := ""
			if col.Nullable {
				null = " null"
			}
			fmt.Fprintf(w, "  %-24s %s%s\n", col.Name, col.Type, null)
		}
		for _, fk := range t.ForeignKeys {
			ref := fk.RefTable
			if len(fk.RefColumns) > 0 {
				ref += "(" + strings.Join(fk.RefColumns, ", ") + ")"
			}
			fmt.Fprintf(w, "  foreign key (%s) -> %s\n", strings.Join(fk.Columns, ", "), ref)
		}
	}
}
