package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/cli"
)

// runConnections lists, creates and deletes the tenant's warehouse
// connections (never credentials: they stay in Vault at --vault-path).
func runConnections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry connections list | create --name N --kind K [--set key=value ...] [--vault-path P] | delete <id>"
	return crud(ctx, args, stdout, synopsis, api.PathConnections, func(fs *flag.FlagSet) func() (any, error) {
		name := fs.String("name", "", "the connection's name")
		kind := fs.String("kind", "", "duckdb, postgres, redshift, snowflake, databricks, bigquery, s3 or parquet")
		vault := fs.String("vault-path", "", "where the agent finds the credentials in Vault, e.g. database/creds/ferry-agent")
		var sets listFlag
		fs.Var(&sets, "set", "a non-secret `key=value` setting (repeat or comma-separate)")
		return func() (any, error) {
			if *name == "" || *kind == "" {
				return nil, cli.Usagef("ferry connections create needs --name and --kind")
			}
			settings := map[string]string{}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, cli.Usagef("--set %q: want key=value", kv)
				}
				settings[k] = v
			}
			return map[string]any{"name": *name, "kind": *kind, "settings": settings, "vault_path": *vault}, nil
		}
	}, []string{"id", "name", "kind", "vault_path"})
}

// runQueries lists, saves and deletes the tenant's saved predictive
// queries, and runs one as a job.
func runQueries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry queries list | create --name N --pql Q --output TABLE | delete <id> | run <id>"
	if len(args) > 0 && args[0] == "run" {
		var af apiFlags
		fs := flag.NewFlagSet("ferry queries run", flag.ContinueOnError)
		af.register(fs)
		if err := parse(fs, args[1:], "ferry queries run <id>", stdout); err != nil {
			return done(err)
		}
		if fs.NArg() != 1 {
			return cli.Usagef("ferry queries run takes one query id")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		var q struct {
			PQL         string `json:"pql"`
			OutputTable string `json:"output_table"`
		}
		if err := c.Do(ctx, http.MethodGet, api.PathQueries+"/"+url.PathEscape(fs.Arg(0)), nil, &q); err != nil {
			return err
		}
		job, err := c.Submit(ctx, q.PQL, q.OutputTable)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "submitted %s (%s)\n", job.ID, job.State)
		return nil
	}
	return crud(ctx, args, stdout, synopsis, api.PathQueries, func(fs *flag.FlagSet) func() (any, error) {
		name := fs.String("name", "", "the query's name")
		pql := fs.String("pql", "", "the predictive query")
		output := fs.String("output", "", "the prediction table")
		return func() (any, error) {
			if *name == "" || *pql == "" || *output == "" {
				return nil, cli.Usagef("ferry queries create needs --name, --pql and --output")
			}
			return map[string]any{"name": *name, "pql": *pql, "output_table": *output}, nil
		}
	}, []string{"id", "name", "output_table", "pql"})
}

// crud runs list, create (with the flags createFlags registers) and delete
// against one API collection, printing columns of the list as a table.
func crud(ctx context.Context, args []string, stdout io.Writer, synopsis, path string, createFlags func(*flag.FlagSet) func() (any, error), columns []string) error {
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	var af apiFlags
	fs := flag.NewFlagSet("ferry "+args[0], flag.ContinueOnError)
	af.register(fs)
	var build func() (any, error)
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n", synopsis)
		return nil
	case "create":
		build = createFlags(fs)
	case "list", "delete":
	default:
		return cli.Usagef("unknown subcommand %q (usage: %s)", args[0], synopsis)
	}
	if err := parse(fs, args[1:], synopsis, stdout); err != nil {
		return done(err)
	}
	if (args[0] == "delete") != (fs.NArg() == 1) || (args[0] != "delete" && fs.NArg() > 0) {
		return cli.Usagef("usage: %s", synopsis)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		body, err := build()
		if err != nil {
			return err
		}
		var out map[string]any
		if err := c.Do(ctx, http.MethodPost, path, body, &out); err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "delete":
		if err := c.Do(ctx, http.MethodDelete, path+"/"+url.PathEscape(fs.Arg(0)), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", fs.Arg(0))
		return nil
	}
	var list []map[string]any
	if err := c.Do(ctx, http.MethodGet, path, nil, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
	for _, item := range list {
		vals := make([]string, len(columns))
		for i, col := range columns {
			vals[i] = fmt.Sprint(item[col])
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}
