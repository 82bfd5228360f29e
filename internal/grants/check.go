package grants

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
)

// Dialect is the catalog dialect Check speaks.
type Dialect int

// The dialects Check speaks.
const (
	// DialectPostgres reads pg_roles and PostgreSQL's predefined roles.
	DialectPostgres Dialect = iota
	// DialectRedshift reads pg_user instead (Redshift has no pg_roles
	// attributes beyond superuser and create-database, and no predefined
	// roles).
	DialectRedshift
)

// Querier is what Check needs of a connection: a *pgx.Conn or a pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// CheckRequest is what a job needs of the warehouse.
type CheckRequest struct {
	Dialect Dialect
	// Schema holds the tables named without a schema; "" means public.
	Schema string
	// Read are the tables the job reads: table or schema.table, in SQL's
	// quoting (unquoted names fold to lower case).
	Read []string
	// Write is the schema the agent creates prediction tables in.
	Write string
}

// TableStatus says whether the agent can read one table.
type TableStatus struct {
	Name     string // schema.table, quoted where SQL needs it
	Readable bool
}

// Report is the outcome of Check.
type Report struct {
	// Role is the role the connection runs as.
	Role string
	// Reads holds one status per table, in the request's order.
	Reads []TableStatus
	// Write is the output schema and Writable whether the agent can create
	// tables in it.
	Write    string
	Writable bool
	// Missing names each privilege (or object) the job needs and lacks.
	Missing []string
	// Warnings names each privilege beyond what the job needs.
	Warnings []string
}

// OK reports whether the agent can do the job.
func (r *Report) OK() bool { return len(r.Missing) == 0 }

// Format prints the report: one line per table and for the output schema,
// then the warnings and what is missing.
func (r *Report) Format(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "role\t%s\n", displayName(r.Role))
	for _, t := range r.Reads {
		state := "ok: can read"
		if !t.Readable {
			state = "CANNOT READ"
		}
		fmt.Fprintf(tw, "read\t%s\t%s\n", t.Name, state)
	}
	state := "ok: can create tables"
	if !r.Writable {
		state = "CANNOT CREATE TABLES"
	}
	fmt.Fprintf(tw, "write\t%s\t%s\n", r.Write, state)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "missing: %s\n", m)
	}
	var err error
	switch {
	case !r.OK():
		_, err = fmt.Fprintf(w, "not ready: the agent cannot do the job (%d missing)\n", len(r.Missing))
	case len(r.Warnings) > 0:
		_, err = fmt.Fprintf(w, "ready, with %d warning(s): the role holds more than the job needs\n", len(r.Warnings))
	default:
		_, err = fmt.Fprintln(w, "ready: the role holds what the job needs and nothing more")
	}
	return err
}

// predefined says what membership in one of PostgreSQL's predefined roles
// allows, for those worth a warning.
func predefined(role string) (string, bool) {
	switch role {
	case "pg_read_all_data":
		return "may read every table in the database, far more than the job's tables", true
	case "pg_write_all_data":
		return "may write every table in the database", true
	case "pg_read_server_files":
		return "may read files on the database server", true
	case "pg_write_server_files":
		return "may write files on the database server", true
	case "pg_execute_server_program":
		return "may run programs on the database server", true
	case "pg_signal_backend":
		return "may cancel and terminate other sessions", true
	case "pg_checkpoint":
		return "may run CHECKPOINT", true
	case "pg_create_subscription":
		return "may create subscriptions", true
	case "pg_maintain":
		return "may VACUUM, ANALYZE, REINDEX, REFRESH and LOCK every table", true
	case "pg_monitor":
		return "may read server settings, statistics and other sessions' queries", true
	case "pg_read_all_settings":
		return "may read every server setting", true
	case "pg_read_all_stats":
		return "may read every statistics view, with other sessions' queries", true
	case "pg_stat_scan_tables":
		return "may run monitoring functions that lock tables", true
	}
	return "", false
}

// checker runs Check's queries in one dialect.
type checker struct {
	q       Querier
	dialect Dialect
	rep     *Report
	super   bool
}

// owner returns the SQL that is true when the current role owns (or, on
// PostgreSQL, is a member of the owner of) the object whose owner column is
// col.
func (c *checker) owner(col string) string {
	if c.dialect == DialectRedshift {
		return col + " = (SELECT usesysid FROM pg_user WHERE usename = current_user)"
	}
	return "pg_has_role(" + col + ", 'MEMBER')"
}

func (c *checker) warn(format string, args ...any) {
	c.rep.Warnings = append(c.rep.Warnings, fmt.Sprintf(format, args...))
}

func (c *checker) missing(format string, args ...any) {
	m := fmt.Sprintf(format, args...)
	if !slices.Contains(c.rep.Missing, m) {
		c.rep.Missing = append(c.rep.Missing, m)
	}
}

// Check inspects the privileges of the role q runs as against req: it can
// read each table (USAGE on its schema, SELECT on it) and create tables in
// the output schema (USAGE and CREATE), and holds nothing beyond: no write
// privilege on a read table, no CREATE or ownership on a source schema, no
// superuser, CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION, no membership
// in a powerful predefined role or in a role with those attributes, no
// ownership of the read tables or the database. A malformed request wraps
// ErrInvalid; a failed query is returned as is.
func Check(ctx context.Context, q Querier, req CheckRequest) (*Report, error) {
	schema := orDefault(req.Schema, "public")
	type table struct{ schema, name string }
	var tables []table
	for _, item := range req.Read {
		p, err := parseName(item, lowerRules())
		if err == nil && (p.wildcard || len(p.parts) > 2) {
			err = fmt.Errorf("want table or schema.table")
		}
		if err == nil {
			err = checkParts(p.parts)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read %q: %v", ErrInvalid, item, err)
		}
		t := table{schema, p.parts[0]}
		if len(p.parts) == 2 {
			t = table{p.parts[0], p.parts[1]}
		}
		if !slices.Contains(tables, t) {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("%w: nothing to read: give the tables the job reads (--read)", ErrInvalid)
	}
	if strings.TrimSpace(req.Write) == "" {
		return nil, fmt.Errorf("%w: no output: give the schema the agent writes predictions to (--write)", ErrInvalid)
	}
	w, err := parseName(req.Write, lowerRules())
	if err == nil && (w.wildcard || len(w.parts) != 1) {
		err = fmt.Errorf("want one schema name")
	}
	if err == nil {
		err = checkParts(w.parts)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: write %q: %v", ErrInvalid, req.Write, err)
	}
	out := w.parts[0]

	c := &checker{q: q, dialect: req.Dialect, rep: &Report{Write: displayName(out)}}
	if err := c.role(ctx); err != nil {
		return nil, err
	}
	if !c.super {
		if err := c.database(ctx); err != nil {
			return nil, err
		}
	}
	var sources []string
	for _, t := range tables {
		ok, err := c.table(ctx, t.schema, t.name)
		if err != nil {
			return nil, err
		}
		c.rep.Reads = append(c.rep.Reads, TableStatus{Name: displayName(t.schema, t.name), Readable: ok})
		if !slices.Contains(sources, t.schema) {
			sources = append(sources, t.schema)
		}
	}
	if !c.super {
		for _, s := range sources {
			if err := c.sourceSchema(ctx, s, s == out); err != nil {
				return nil, err
			}
		}
	}
	if err := c.output(ctx, out); err != nil {
		return nil, err
	}
	return c.rep, nil
}

// role reads the role's attributes and, on PostgreSQL, its memberships.
func (c *checker) role(ctx context.Context) error {
	q := `SELECT current_user::text, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = current_user`
	if c.dialect == DialectRedshift {
		q = `SELECT current_user::text, usesuper, false, usecreatedb, false, false FROM pg_user WHERE usename = current_user`
	}
	var super, createRole, createDB, bypassRLS, replication bool
	if err := c.q.QueryRow(ctx, q).Scan(&c.rep.Role, &super, &createRole, &createDB, &bypassRLS, &replication); err != nil {
		return fmt.Errorf("check: read the role's attributes: %w", err)
	}
	c.super = super
	if super {
		c.warn("superuser: bypasses every privilege check (may read, write and drop anything); the agent needs none of it")
		return nil
	}
	for _, a := range []struct {
		on   bool
		what string
	}{
		{createRole, "CREATEROLE: may create, alter and drop roles"},
		{createDB, "CREATEDB: may create databases"},
		{bypassRLS, "BYPASSRLS: ignores row-level security policies"},
		{replication, "REPLICATION: may stream every change in the cluster"},
	} {
		if a.on {
			c.warn("%s", a.what)
		}
	}
	if c.dialect == DialectRedshift {
		return nil
	}
	rows, err := c.q.Query(ctx, `
		SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication
		FROM pg_roles
		WHERE rolname <> current_user AND pg_has_role(oid, 'MEMBER')
		ORDER BY rolname`)
	if err != nil {
		return fmt.Errorf("check: read the role's memberships: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var attrs [5]bool
		if err := rows.Scan(&name, &attrs[0], &attrs[1], &attrs[2], &attrs[3], &attrs[4]); err != nil {
			return fmt.Errorf("check: read the role's memberships: %w", err)
		}
		if what, ok := predefined(name); ok {
			c.warn("member of %s: %s", name, what)
			continue
		}
		var held []string
		for i, a := range []string{"SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS", "REPLICATION"} {
			if attrs[i] {
				held = append(held, a)
			}
		}
		if len(held) > 0 {
			c.warn("member of %s, which has %s: may SET ROLE to it", displayName(name), strings.Join(held, ", "))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check: read the role's memberships: %w", err)
	}
	return nil
}

// database warns about owning the database or creating schemas in it.
func (c *checker) database(ctx context.Context) error {
	var name string
	var create, owns bool
	err := c.q.QueryRow(ctx, `SELECT current_database()::text, has_database_privilege(oid, 'CREATE'), `+
		c.owner("datdba")+` FROM pg_database WHERE datname = current_database()`).Scan(&name, &create, &owns)
	if err != nil {
		return fmt.Errorf("check: read the database's privileges: %w", err)
	}
	switch {
	case owns:
		c.warn("owns database %s: may create, alter and drop anything in it", displayName(name))
	case create:
		c.warn("CREATE on database %s: may create schemas", displayName(name))
	}
	return nil
}

// table checks one read table and returns whether the agent can read it.
// Privileges are asked by OID: a name would need USAGE on its schema just to
// be looked up.
func (c *checker) table(ctx context.Context, schema, name string) (bool, error) {
	display := displayName(schema, name)
	var usage bool
	err := c.q.QueryRow(ctx, `SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = $1`, schema).Scan(&usage)
	if errors.Is(err, pgx.ErrNoRows) {
		c.missing("table %s does not exist (no schema %s)", display, displayName(schema))
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check: read schema %s: %w", displayName(schema), err)
	}
	privs := []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
	if c.dialect == DialectRedshift {
		privs = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "REFERENCES"}
	}
	cols := make([]string, len(privs))
	has := make([]bool, len(privs))
	dest := make([]any, 0, len(privs)+1)
	for i, p := range privs {
		cols[i] = "has_table_privilege(c.oid, '" + p + "')"
		dest = append(dest, &has[i])
	}
	var owns bool
	dest = append(dest, &owns)
	err = c.q.QueryRow(ctx, `SELECT `+strings.Join(cols, ", ")+`, `+c.owner("c.relowner")+`
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
		schema, name).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		c.missing("table %s does not exist", display)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check: read table %s: %w", display, err)
	}
	if !usage {
		c.missing("USAGE on schema %s", displayName(schema))
	}
	if !has[0] {
		c.missing("SELECT on table %s", display)
	}
	if !c.super {
		var extra []string
		for i, p := range privs[1:] {
			if has[i+1] {
				extra = append(extra, p)
			}
		}
		switch {
		case owns:
			c.warn("owns read table %s: may write, alter, drop and grant it; the agent only reads it", display)
		case len(extra) > 0:
			c.warn("%s on read table %s: the agent only reads it", strings.Join(extra, ", "), display)
		}
	}
	return usage && has[0], nil
}

// sourceSchema warns about creating in, or owning, a schema the agent reads.
func (c *checker) sourceSchema(ctx context.Context, schema string, isOutput bool) error {
	var create, owns bool
	err := c.q.QueryRow(ctx, `SELECT has_schema_privilege(oid, 'CREATE'), `+c.owner("nspowner")+` FROM pg_namespace WHERE nspname = $1`,
		schema).Scan(&create, &owns)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // reported with its tables
	}
	if err != nil {
		return fmt.Errorf("check: read schema %s: %w", displayName(schema), err)
	}
	switch {
	case isOutput:
		c.warn("output schema %s is also a source schema: the agent may create tables beside the ones it reads", displayName(schema))
	case owns:
		c.warn("owns source schema %s: may create, alter and drop anything in it", displayName(schema))
	case create:
		c.warn("CREATE on source schema %s: the agent creates tables only in its output schema", displayName(schema))
	}
	return nil
}

// output checks the output schema and records whether tables can be
// created in it.
func (c *checker) output(ctx context.Context, schema string) error {
	display := displayName(schema)
	var usage, create, owns bool
	err := c.q.QueryRow(ctx, `SELECT has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE'), `+
		c.owner("nspowner")+` FROM pg_namespace WHERE nspname = $1`, schema).Scan(&usage, &create, &owns)
	if errors.Is(err, pgx.ErrNoRows) {
		c.missing("output schema %s does not exist", display)
		return nil
	}
	if err != nil {
		return fmt.Errorf("check: read schema %s: %w", display, err)
	}
	if !usage {
		c.missing("USAGE on schema %s", display)
	}
	if !create {
		c.missing("CREATE on schema %s", display)
	}
	c.rep.Writable = usage && create
	if owns && !c.super {
		c.warn("owns output schema %s: may drop it and grant on it; USAGE and CREATE are enough", display)
	}
	return nil
}
