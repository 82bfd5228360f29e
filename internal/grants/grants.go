// Package grants tells a warehouse admin what the Ferry agent needs and
// checks that the agent has it and nothing more.
//
// Generate turns a Plan (the tables or schemas the agent reads, the schema it
// writes predictions to, the role or principal it runs as) into the exact
// statements or policy for one kind of warehouse: SQL for PostgreSQL,
// Redshift, Snowflake and Databricks Unity Catalog, gcloud/bq commands for
// BigQuery, an IAM policy document for S3. Identifiers are quoted in each
// dialect's way; input that cannot be granted exactly is refused with an
// error wrapping ErrInvalid that names what is wrong.
//
// Check connects with the agent's own credentials (PostgreSQL and Redshift)
// and reports, per table, whether the agent can read what the job needs and
// create tables in the output schema, with a warning for every privilege
// beyond that.
//
// Names follow SQL's rules: parts are separated by dots, a part in double
// quotes (or backticks) is taken as written (a doubled quote inside stands
// for one), and an unquoted part (ASCII letters, digits, '_' and '$') is
// folded the way the warehouse folds it (to lower case on PostgreSQL,
// Redshift and Databricks, to upper case on Snowflake, unchanged on
// BigQuery). So `sales."order items"` names the table
// `order items` in schema `sales`.
package grants

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid marks a request that cannot be granted as given: an unknown
// kind, a missing or malformed name or URL, a flag the kind does not take.
var ErrInvalid = errors.New("invalid input")

// Kind is a kind of warehouse.
type Kind string

// The kinds Generate knows.
const (
	Postgres   Kind = "postgres"
	Redshift   Kind = "redshift"
	Snowflake  Kind = "snowflake"
	Databricks Kind = "databricks"
	BigQuery   Kind = "bigquery"
	S3         Kind = "s3"
)

// Kinds lists the kinds Generate knows, in the order the docs give them.
func Kinds() []Kind { return []Kind{Snowflake, Databricks, BigQuery, S3, Postgres, Redshift} }

// DefaultRole is the role created when Plan.Role is empty (folded like an
// unquoted name: FERRY_AGENT on Snowflake).
const DefaultRole = "ferry_agent"

// Plan is what the agent needs on one warehouse.
//
// Read and Write take, per kind:
//
//	postgres, redshift  Read: schema or schema.table   Write: schema
//	snowflake           Read: db.schema or db.schema.table         Write: db.schema
//	databricks          Read: catalog.schema or catalog.schema.table Write: catalog.schema
//	bigquery            Read: project.dataset or project.dataset.table Write: project.dataset
//	s3                  Read: s3://bucket/prefix URLs      Write: s3://bucket/prefix
//
// A name without its last part (a schema, a dataset) means every table in
// it, present and future; `schema.*` says the same explicitly.
type Plan struct {
	Kind  Kind
	Read  []string
	Write string
	// Role is the role to create (postgres, redshift, snowflake); empty means
	// DefaultRole.
	Role string
	// User is who the role is granted to: an existing login user (postgres,
	// redshift, snowflake; optional), the principal (databricks: a user,
	// service principal or group; required), or the IAM member (bigquery:
	// serviceAccount:…, user:…, group:…; required).
	User string
	// Warehouse is the Snowflake virtual warehouse the agent queries with
	// (snowflake; required).
	Warehouse string
	// Owner is the role that creates tables in the schemas read whole, so
	// that the grant on future tables covers the tables it creates
	// (postgres, redshift; optional: without it the default privileges
	// cover tables created by the role running the statements).
	Owner string
	// Database adds GRANT CONNECT on it (postgres, redshift; optional: for
	// databases whose CONNECT was revoked from PUBLIC).
	Database string
	// Vault makes the role a NOLOGIN group for Vault's database secrets
	// engine, which creates a login user per job as a member of it, and
	// adds the Vault role's creation and revocation statements and the
	// agent's connector URL (postgres; optional).
	Vault bool
	// Project is where the agent runs query jobs and Storage Read API
	// sessions (bigquery; optional: the output dataset's project).
	Project string
}

// Generate returns the statements or policy that give the agent what Plan
// describes and nothing more. Errors wrap ErrInvalid.
func Generate(p Plan) (string, error) {
	if len(p.Read) == 0 {
		return "", fmt.Errorf("%w: nothing to read: give the tables or schemas the agent reads (--read)", ErrInvalid)
	}
	if strings.TrimSpace(p.Write) == "" {
		return "", fmt.Errorf("%w: no output: give the schema the agent writes predictions to (--write)", ErrInvalid)
	}
	type gen struct {
		flags []string // optional Plan fields this kind takes
		fn    func(Plan) (string, error)
	}
	gens := map[Kind]gen{
		Postgres:   {[]string{"role", "user", "owner", "database", "vault"}, genPostgres},
		Redshift:   {[]string{"role", "user", "owner", "database"}, genRedshift},
		Snowflake:  {[]string{"role", "user", "warehouse"}, genSnowflake},
		Databricks: {[]string{"user"}, genDatabricks},
		BigQuery:   {[]string{"user", "project"}, genBigQuery},
		S3:         {nil, genS3},
	}
	g, ok := gens[p.Kind]
	if !ok {
		names := make([]string, 0, len(gens))
		for _, k := range Kinds() {
			names = append(names, string(k))
		}
		return "", fmt.Errorf("%w: unknown kind %q (known: %s)", ErrInvalid, p.Kind, strings.Join(names, ", "))
	}
	vault := ""
	if p.Vault {
		vault = "yes"
	}
	set := map[string]string{"role": p.Role, "user": p.User, "warehouse": p.Warehouse, "owner": p.Owner, "database": p.Database, "project": p.Project, "vault": vault}
	for _, f := range []string{"role", "user", "warehouse", "owner", "database", "project", "vault"} {
		if set[f] != "" && !contains(g.flags, f) {
			return "", fmt.Errorf("%w: %s does not take --%s (it takes %s)", ErrInvalid, p.Kind, f, flagList(g.flags))
		}
	}
	return g.fn(p)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func flagList(flags []string) string {
	if len(flags) == 0 {
		return "only --read and --write"
	}
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = "--" + f
	}
	return "--read, --write, " + strings.Join(out, ", ")
}
