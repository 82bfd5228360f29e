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
)

// listFlag collects comma-separated names over repeated flags; commas inside
// quotes belong to a name.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	items, err := grants.SplitList(v)
	if err != nil {
		return err
	}
	*l = append(*l, items...)
	return nil
}

const grantsSynopsis = `ferry grants <kind> --read NAMES --write NAME [--role NAME] [--user NAME] [kind's flags]

Prints the statements (or policy) a warehouse admin runs to give the agent
what it needs and nothing more: read the named tables (or every table of a
named schema, present and future) and create tables in the output schema.

  kind        --read (comma-separated, repeatable)     --write             the kind's flags
  postgres    schema | schema.table                    schema              --role --user --owner --database
  redshift    schema | schema.table                    schema              --role --user --owner --database
  snowflake   db.schema | db.schema.table              db.schema           --warehouse (required) --role --user
  databricks  catalog.schema | catalog.schema.table    catalog.schema      --user (the principal; required)
  bigquery    project.dataset | project.dataset.table  project.dataset     --user (an IAM member; required) --project
  s3          s3://bucket/prefix                       s3://bucket/prefix

Names follow SQL: unquoted parts fold as the warehouse folds them, quoted
parts are exact ('sales."order items"'). See connectors/<kind>/README.md.`

// runGrants prints what the agent needs on one kind of warehouse.
func runGrants(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("ferry grants", flag.ContinueOnError)
	var read listFlag
	fs.Var(&read, "read", "`names` the agent reads: tables or schemas (or s3:// URLs), comma-separated")
	write := fs.String("write", "", "output `schema` (dataset, s3:// URL) the agent writes predictions to")
	role := fs.String("role", "", "`name` of the role to create (default "+grants.DefaultRole+")")
	user := fs.String("user", "", "`name` of the login user, principal or IAM member the agent runs as")
	warehouse := fs.String("warehouse", "", "snowflake: the virtual `warehouse` the agent queries with")
	owner := fs.String("owner", "", "postgres, redshift: the `role` that creates tables in schemas read whole")
	database := fs.String("database", "", "postgres, redshift: also GRANT CONNECT on this `database`")
	vault := fs.Bool("vault", false, "postgres: a NOLOGIN role for Vault's per-job users, with the Vault role's statements and the agent's URL")
	project := fs.String("project", "", "bigquery: the `project` the agent runs jobs in (default: the output dataset's)")
	pos, err := parseMixed(fs, args, grantsSynopsis, stdout)
	if err != nil {
		return done(err)
	}
	if len(pos) != 1 {
		kinds := make([]string, 0, len(grants.Kinds()))
		for _, k := range grants.Kinds() {
			kinds = append(kinds, string(k))
		}
		return cli.Usagef("ferry grants takes one kind: %s (see --help)", strings.Join(kinds, ", "))
	}
	out, err := grants.Generate(grants.Plan{
		Kind: grants.Kind(pos[0]), Read: read, Write: *write, Role: *role, User: *user,
		Warehouse: *warehouse, Owner: *owner, Database: *database, Project: *project, Vault: *vault,
	})
	if err != nil {
		if errors.Is(err, grants.ErrInvalid) {
			return cli.Usage(err)
		}
		return err
	}
	_, err = fmt.Fprint(stdout, out)
	return err
}
