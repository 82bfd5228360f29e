package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/grants"
	"github.com/ferry-ai/ferry/secrets"
)

const checkSynopsis = `ferry check --warehouse URL [--credentials FILE] --read t1,t2 --write SCHEMA
       ferry agent check …   (the same)

The agent operator's preflight: connects with the agent's credentials and
reports, per table, whether the agent can read it and whether it can create
tables in the output schema, with a warning for every privilege beyond that
(write privileges on a read table, CREATE on a source schema, superuser,
CREATEROLE, CREATEDB, ownership, powerful role memberships). Exit 0 when the
agent can do the job (warnings printed), 1 naming each missing privilege.
PostgreSQL and Redshift URLs only. Tables are table or schema.table (SQL
quoting; unqualified names are in the URL's schema).`

// runCheck checks the agent's warehouse privileges against a job's needs.
func runCheck(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("ferry check", flag.ContinueOnError)
	warehouse := fs.String("warehouse", "", "warehouse `URL` the agent reads (postgres://, postgresql://, redshift://; no credentials in it)")
	creds := fs.String("credentials", "", "YAML `file` of the agent's warehouse credentials (user, password; mode 0600)")
	var read listFlag
	fs.Var(&read, "read", "`tables` the job reads, comma-separated (table or schema.table)")
	write := fs.String("write", "", "output `schema` the agent creates prediction tables in")
	pos, err := parseMixed(fs, args, checkSynopsis, stdout)
	if err != nil {
		return done(err)
	}
	switch {
	case len(pos) != 0:
		return cli.Usagef("ferry check takes no arguments, got %q (see --help)", strings.Join(pos, " "))
	case *warehouse == "":
		return cli.Usagef("ferry check needs --warehouse URL (see --help)")
	case len(read) == 0:
		return cli.Usagef("ferry check needs --read: the tables the job reads (see --help)")
	case *write == "":
		return cli.Usagef("ferry check needs --write: the output schema (see --help)")
	}
	var credMap map[string]string
	if *creds != "" {
		if credMap, err = secrets.LoadFile(*creds); err != nil {
			return cli.Usage(err)
		}
	}
	conn, target, err := grants.Connect(ctx, *warehouse, credMap)
	if err != nil {
		if errors.Is(err, grants.ErrInvalid) || errors.Is(err, grants.ErrUnavailable) {
			return cli.Usage(err)
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := grants.Check(ctx, conn, grants.CheckRequest{Dialect: target.Dialect, Schema: target.Schema, Read: read, Write: *write})
	if err != nil {
		if errors.Is(err, grants.ErrInvalid) {
			return cli.Usage(err)
		}
		return err
	}
	if err := rep.Format(stdout); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("the agent cannot do the job: missing %s", strings.Join(rep.Missing, "; "))
	}
	return nil
}

// runAgent holds `ferry agent check`, the same as `ferry check`.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry agent check --warehouse URL [--credentials FILE] --read t1,t2 --write SCHEMA"
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n\nThe same as ferry check: see ferry check --help.\n", synopsis)
		return nil
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	default:
		return cli.Usagef("unknown agent subcommand %q (usage: %s)", args[0], synopsis)
	}
}
