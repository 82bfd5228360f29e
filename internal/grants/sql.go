package grants

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ferry-ai/ferry/secrets"
)

// schemaRead is what the agent reads in one schema: every table (whole), or
// the named tables.
type schemaRead struct {
	schema []string
	whole  bool
	tables []string
}

// parseReads parses Plan.Read for a dialect whose schemas have schemaParts
// parts: each item is a schema (every table) or a table in one. Duplicates
// collapse and a whole schema covers its named tables; order is kept.
func parseReads(items []string, r nameRules, schemaParts int, form string, check func([]string) error) ([]schemaRead, error) {
	var out []schemaRead
	find := func(schema []string) *schemaRead {
		for i := range out {
			if slices.Equal(out[i].schema, schema) {
				return &out[i]
			}
		}
		out = append(out, schemaRead{schema: schema})
		return &out[len(out)-1]
	}
	for _, item := range items {
		p, err := parseName(item, r)
		if err == nil {
			err = checkShape(p, schemaParts, true, form)
		}
		if err == nil {
			err = check(p.parts)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read %q: %v", ErrInvalid, item, err)
		}
		if len(p.parts) == schemaParts {
			sr := find(p.parts)
			sr.whole, sr.tables = true, nil
			continue
		}
		sr := find(p.parts[:schemaParts])
		if !sr.whole && !slices.Contains(sr.tables, p.parts[schemaParts]) {
			sr.tables = append(sr.tables, p.parts[schemaParts])
		}
	}
	return out, nil
}

// parseSchema parses Plan.Write: a schema of schemaParts parts that the agent
// does not read.
func parseSchema(item string, r nameRules, schemaParts int, form string, check func([]string) error, reads []schemaRead) ([]string, error) {
	p, err := parseName(item, r)
	if err == nil {
		err = checkShape(p, schemaParts, false, form)
	}
	if err == nil {
		err = check(p.parts)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: write %q: %v", ErrInvalid, item, err)
	}
	for _, sr := range reads {
		if slices.Equal(sr.schema, p.parts) {
			return nil, fmt.Errorf("%w: write %q: the agent also reads this schema; give it an output schema of its own, so that it never holds CREATE where it reads", ErrInvalid, item)
		}
	}
	return p.parts, nil
}

func checkShape(p parsed, schemaParts int, tableOK bool, form string) error {
	n := len(p.parts)
	switch {
	case p.wildcard && n == schemaParts && tableOK:
		return nil
	case p.wildcard:
		return fmt.Errorf("want %s", form)
	case n == schemaParts, tableOK && n == schemaParts+1:
		return nil
	}
	return fmt.Errorf("want %s, got %d part(s)", form, n)
}

// parseIdent parses a one-part name: a role, a user, a warehouse.
func parseIdent(what, s string, r nameRules, check func([]string) error) (string, error) {
	p, err := parseName(s, r)
	if err == nil && (p.wildcard || len(p.parts) != 1) {
		err = fmt.Errorf("want one name, got %q", s)
	}
	if err == nil {
		err = check(p.parts)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrInvalid, what, s, err)
	}
	return p.parts[0], nil
}

// maxBytes returns a check that refuses parts longer than n bytes, which
// the warehouse would silently truncate (granting on another name).
func maxBytes(product string, n int) func([]string) error {
	return func(parts []string) error {
		if err := checkParts(parts); err != nil {
			return err
		}
		for _, p := range parts {
			if len(p) > n {
				return fmt.Errorf("part %q is %d bytes; %s names are at most %d", p, len(p), product, n)
			}
		}
		return nil
	}
}

// maxRunes returns a check that refuses parts longer than n characters.
func maxRunes(product string, n int) func([]string) error {
	return func(parts []string) error {
		if err := checkParts(parts); err != nil {
			return err
		}
		for _, p := range parts {
			if c := utf8.RuneCountInString(p); c > n {
				return fmt.Errorf("part %q is %d characters; %s names are at most %d", p, c, product, n)
			}
		}
		return nil
	}
}

// script accumulates printed lines.
type script struct{ b strings.Builder }

func (s *script) line(format string, args ...any) {
	fmt.Fprintf(&s.b, format, args...)
	s.b.WriteByte('\n')
}

func (s *script) String() string { return s.b.String() }

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func genPostgres(p Plan) (string, error) { return genPG(p, false) }
func genRedshift(p Plan) (string, error) { return genPG(p, true) }

// genPG writes PostgreSQL's or Redshift's statements. Redshift differs in
// its users (CREATE USER; roles are granted with GRANT ROLE and grants to a
// role say TO ROLE) and in ALTER DEFAULT PRIVILEGES FOR USER.
func genPG(p Plan, redshift bool) (string, error) {
	product, kind, check := "PostgreSQL", Postgres, maxBytes("PostgreSQL", 63)
	if redshift {
		product, kind, check = "Redshift", Redshift, maxBytes("Redshift", 127)
	}
	reads, err := parseReads(p.Read, lowerRules(), 1, "schema or schema.table", check)
	if err != nil {
		return "", err
	}
	write, err := parseSchema(p.Write, lowerRules(), 1, "schema", check, reads)
	if err != nil {
		return "", err
	}
	role, err := parseIdent("role", orDefault(p.Role, DefaultRole), lowerRules(), check)
	if err != nil {
		return "", err
	}
	var user, owner, database string
	if p.User != "" {
		if user, err = parseIdent("user", p.User, lowerRules(), check); err != nil {
			return "", err
		}
		if user == role {
			return "", fmt.Errorf("%w: user %q is the role to create; give another name with --role", ErrInvalid, p.User)
		}
	}
	if p.Owner != "" {
		if owner, err = parseIdent("owner", p.Owner, lowerRules(), check); err != nil {
			return "", err
		}
		if !slices.ContainsFunc(reads, func(sr schemaRead) bool { return sr.whole }) {
			return "", fmt.Errorf("%w: --owner applies to schemas read whole (their future tables), and every read names a table", ErrInvalid)
		}
	}
	if p.Database != "" {
		if database, err = parseIdent("database", p.Database, lowerRules(), check); err != nil {
			return "", err
		}
	}
	r := quoteDouble(role)
	grantee := r
	var s script
	s.line("-- Ferry agent: least-privilege grants for %s (ferry grants %s).", product, kind)
	s.line("-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.")
	if p.Vault && user != "" {
		return "", fmt.Errorf("%w: --vault and --user: with Vault, the agent's users are made per job as members of the role; give one or the other", ErrInvalid)
	}
	switch {
	case p.Vault:
		s.line("CREATE ROLE %s NOLOGIN;", r)
	case !redshift && user == "":
		s.line("CREATE ROLE %s LOGIN;", r)
		s.line(`-- Set its password where no log records it, e.g. psql's \password %s`, r)
	case !redshift:
		s.line("CREATE ROLE %s NOLOGIN;", r)
	case user == "":
		s.line("CREATE USER %s PASSWORD DISABLE;", r)
		s.line("-- Then give it a password (ALTER USER %s PASSWORD ...) or sign in with IAM credentials.", r)
	default:
		s.line("CREATE ROLE %s;", r)
		grantee = "ROLE " + r
	}
	if database != "" {
		s.line("GRANT CONNECT ON DATABASE %s TO %s;", quoteDouble(database), grantee)
	}
	for _, sr := range reads {
		schema := quoteDouble(sr.schema[0])
		s.line("GRANT USAGE ON SCHEMA %s TO %s;", schema, grantee)
		if !sr.whole {
			for _, t := range sr.tables {
				s.line("GRANT SELECT ON TABLE %s.%s TO %s;", schema, quoteDouble(t), grantee)
			}
			continue
		}
		s.line("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;", schema, grantee)
		forOwner := ""
		switch {
		case owner == "":
			s.line("-- Future tables created by the role running this (give --owner for another creator):")
		case redshift:
			forOwner = " FOR USER " + quoteDouble(owner)
		default:
			forOwner = " FOR ROLE " + quoteDouble(owner)
		}
		s.line("ALTER DEFAULT PRIVILEGES%s IN SCHEMA %s GRANT SELECT ON TABLES TO %s;", forOwner, schema, grantee)
	}
	out := quoteDouble(write[0])
	s.line("CREATE SCHEMA IF NOT EXISTS %s;", out)
	s.line("GRANT USAGE, CREATE ON SCHEMA %s TO %s;", out, grantee)
	switch {
	case user != "" && redshift:
		s.line("GRANT ROLE %s TO %s;", r, quoteDouble(user))
	case user != "":
		s.line("GRANT %s TO %s;", r, quoteDouble(user))
	}
	if p.Vault {
		vaultRole(&s, role, reads[0].schema[0], write[0])
	}
	return s.String(), nil
}

// vaultRole writes, as comments, the Vault database role that makes a login
// user per job as a member of role, and the agent's connector URL: tables
// the agent writes belong to role (write_role), so Vault can drop each
// job's user, and revocation ends the user's sessions at once.
func vaultRole(s *script, role, read, write string) {
	s.line("")
	s.line("-- Vault's database secrets engine makes a login user per job, a member of %s:", quoteDouble(role))
	s.line("--   vault write database/roles/ferry-agent db_name=<connection> default_ttl=1h max_ttl=24h \\")
	s.line("--     creation_statements=@creation.sql revocation_statements=@revocation.sql")
	s.line("-- creation.sql:")
	s.line("--   CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE %s;", quoteDouble(role))
	s.line("-- revocation.sql (ends the user's sessions, then drops it; it owns nothing):")
	s.line("--   SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';")
	s.line("--   DROP ROLE IF EXISTS \"{{name}}\";")
	s.line("-- The agent's Vault policy, and nothing more:")
	for _, l := range strings.Split(strings.TrimSpace(secrets.AgentPolicy("database", "ferry-agent")), "\n") {
		s.line("--   %s", l)
	}
	s.line("-- The agent's warehouse URL:")
	s.line("--   postgres://<host>:5432/<database>?schema=%s&output_schema=%s&write_role=%s",
		url.QueryEscape(read), url.QueryEscape(write), url.QueryEscape(role))
}

// genSnowflake writes Snowflake's statements.
func genSnowflake(p Plan) (string, error) {
	check := maxRunes("Snowflake", 255)
	reads, err := parseReads(p.Read, upperRules(), 2, "database.schema or database.schema.table", check)
	if err != nil {
		return "", err
	}
	write, err := parseSchema(p.Write, upperRules(), 2, "database.schema", check, reads)
	if err != nil {
		return "", err
	}
	if p.Warehouse == "" {
		return "", fmt.Errorf("%w: snowflake needs --warehouse: the virtual warehouse the agent's queries run on", ErrInvalid)
	}
	wh, err := parseIdent("warehouse", p.Warehouse, upperRules(), check)
	if err != nil {
		return "", err
	}
	role, err := parseIdent("role", orDefault(p.Role, DefaultRole), upperRules(), check)
	if err != nil {
		return "", err
	}
	var user string
	if p.User != "" {
		if user, err = parseIdent("user", p.User, upperRules(), check); err != nil {
			return "", err
		}
	}
	r := "ROLE " + quoteDouble(role)
	var s script
	s.line("-- Ferry agent: least-privilege grants for Snowflake (ferry grants snowflake).")
	s.line("-- Run as a role that owns these objects or holds MANAGE GRANTS.")
	s.line("CREATE ROLE IF NOT EXISTS %s;", quoteDouble(role))
	s.line("GRANT USAGE ON WAREHOUSE %s TO %s;", quoteDouble(wh), r)
	var dbs []string
	for _, schema := range append(schemasOf(reads), write) {
		if !slices.Contains(dbs, schema[0]) {
			dbs = append(dbs, schema[0])
			s.line("GRANT USAGE ON DATABASE %s TO %s;", quoteDouble(schema[0]), r)
		}
	}
	for _, sr := range reads {
		schema := qualify(sr.schema, quoteDouble)
		s.line("GRANT USAGE ON SCHEMA %s TO %s;", schema, r)
		if sr.whole {
			s.line("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;", schema, r)
			s.line("GRANT SELECT ON FUTURE TABLES IN SCHEMA %s TO %s;", schema, r)
			continue
		}
		for _, t := range sr.tables {
			s.line("GRANT SELECT ON TABLE %s.%s TO %s;", schema, quoteDouble(t), r)
		}
	}
	out := qualify(write, quoteDouble)
	s.line("CREATE SCHEMA IF NOT EXISTS %s;", out)
	s.line("GRANT USAGE, CREATE TABLE ON SCHEMA %s TO %s;", out, r)
	if user != "" {
		s.line("GRANT ROLE %s TO USER %s;", quoteDouble(role), quoteDouble(user))
	}
	return s.String(), nil
}

func schemasOf(reads []schemaRead) [][]string {
	out := make([][]string, len(reads))
	for i, sr := range reads {
		out[i] = sr.schema
	}
	return out
}

// checkUnity applies Unity Catalog's naming rules: at most 255 characters,
// no period, space, slash, control character or DEL.
func checkUnity(parts []string) error {
	if err := maxRunes("Unity Catalog", 255)(parts); err != nil {
		return err
	}
	for _, p := range parts {
		if i := strings.IndexAny(p, "./ \x7f"); i >= 0 {
			return fmt.Errorf("part %q has %q, which Unity Catalog names cannot hold", p, p[i])
		}
	}
	return nil
}

// genDatabricks writes Databricks Unity Catalog's statements.
func genDatabricks(p Plan) (string, error) {
	reads, err := parseReads(p.Read, lowerRules(), 2, "catalog.schema or catalog.schema.table", checkUnity)
	if err != nil {
		return "", err
	}
	write, err := parseSchema(p.Write, lowerRules(), 2, "catalog.schema", checkUnity, reads)
	if err != nil {
		return "", err
	}
	principal := strings.TrimSpace(p.User)
	if principal == "" {
		return "", fmt.Errorf("%w: databricks needs --user: the principal the agent authenticates as (a user, a service principal's application ID or a group)", ErrInvalid)
	}
	if err := checkParts([]string{principal}); err != nil {
		return "", fmt.Errorf("%w: user %q: %v", ErrInvalid, p.User, err)
	}
	to := quoteBacktick(principal)
	var s script
	s.line("-- Ferry agent: least-privilege grants for Databricks Unity Catalog (ferry grants databricks).")
	s.line("-- The principal also needs CAN USE on the SQL warehouse it queries (a workspace permission, not SQL).")
	var catalogs []string
	for _, schema := range append(schemasOf(reads), write) {
		if !slices.Contains(catalogs, schema[0]) {
			catalogs = append(catalogs, schema[0])
			s.line("GRANT USE CATALOG ON CATALOG %s TO %s;", quoteBacktick(schema[0]), to)
		}
	}
	for _, sr := range reads {
		schema := qualify(sr.schema, quoteBacktick)
		s.line("GRANT USE SCHEMA ON SCHEMA %s TO %s;", schema, to)
		if sr.whole {
			s.line("GRANT SELECT ON SCHEMA %s TO %s;", schema, to)
			continue
		}
		for _, t := range sr.tables {
			s.line("GRANT SELECT ON TABLE %s.%s TO %s;", schema, quoteBacktick(t), to)
		}
	}
	out := qualify(write, quoteBacktick)
	s.line("CREATE SCHEMA IF NOT EXISTS %s;", out)
	s.line("GRANT USE SCHEMA, CREATE TABLE, MODIFY ON SCHEMA %s TO %s;", out, to)
	return s.String(), nil
}
