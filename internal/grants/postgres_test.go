package grants_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferry-ai/ferry/internal/grants"
)

// adminDSN is the local PostgreSQL the tests use (`make services` starts it);
// FERRY_TEST_POSTGRES_DSN overrides it.
func adminDSN() string {
	if d := os.Getenv("FERRY_TEST_POSTGRES_DSN"); d != "" {
		return d
	}
	return "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable"
}

// serverURL is the same server as a connector URL, for grants.Connect.
const serverURL = "postgres://127.0.0.1:5432/test?sslmode=disable"

func randomHex(t *testing.T) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func admin(ctx context.Context, t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, adminDSN())
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// fixture is a test's own schemas and roles, dropped when it ends:
// src (the tables the agent reads), other (a table it must not read),
// whole (a schema read whole), out (the output schema).
type fixture struct {
	src, other, whole, out string
	role, password         string
	admin                  *pgx.Conn
}

func newFixture(ctx context.Context, t *testing.T) *fixture {
	t.Helper()
	id := randomHex(t)
	fx := &fixture{
		src: "ferry_grants_src_" + id, other: "ferry_grants_other_" + id,
		whole: "ferry_grants_whole_" + id, out: "ferry_grants_out_" + id,
		role: "ferry_grants_agent_" + id, password: "pw-" + randomHex(t),
		admin: admin(ctx, t),
	}
	t.Cleanup(func() {
		ctx := context.Background()
		fx.dropRole(t, fx.role)
		for _, s := range []string{fx.src, fx.other, fx.whole, fx.out} {
			if _, err := fx.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})
	fx.exec(ctx, t, `
		CREATE SCHEMA {src};
		CREATE TABLE {src}.orders (id int);
		CREATE TABLE {src}."order items" (id int);
		CREATE TABLE {src}."a""b" (id int);
		CREATE TABLE {src}.unlisted (id int);
		CREATE SCHEMA {other};
		CREATE TABLE {other}.secret (id int);
		CREATE SCHEMA {whole};
		CREATE TABLE {whole}.before_grants (id int);
		CREATE SCHEMA {out};
		INSERT INTO {src}.orders VALUES (1);
		INSERT INTO {src}."order items" VALUES (2);
		INSERT INTO {src}."a""b" VALUES (3);
		INSERT INTO {whole}.before_grants VALUES (4);`)
	return fx
}

// exec runs SQL as the admin with {src}, {other}, {whole}, {out}, {role}
// and {boss} replaced by the quoted names.
func (fx *fixture) exec(ctx context.Context, t *testing.T, sql string) {
	t.Helper()
	r := strings.NewReplacer("{src}", q(fx.src), "{other}", q(fx.other), "{whole}", q(fx.whole), "{out}", q(fx.out), "{role}", q(fx.role), "{boss}", q(fx.role+"_boss"))
	if _, err := fx.admin.Exec(ctx, r.Replace(sql)); err != nil {
		t.Fatalf("%s: %v", r.Replace(sql), err)
	}
}

func (fx *fixture) dropRole(t *testing.T, role string) {
	ctx := context.Background()
	var exists bool
	if err := fx.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil || !exists {
		return
	}
	for _, sql := range []string{"DROP OWNED BY " + q(role), "DROP ROLE " + q(role)} {
		if _, err := fx.admin.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

func q(s string) string { return pgx.Identifier{s}.Sanitize() }

// grant runs the statements `ferry grants postgres` prints for the fixture,
// then sets the role's password.
func (fx *fixture) grant(ctx context.Context, t *testing.T) {
	t.Helper()
	script, err := grants.Generate(grants.Plan{
		Kind:  grants.Postgres,
		Read:  []string{fx.src + ".orders", fx.src + `."order items"`, fx.src + `."a""b"`, fx.whole},
		Write: fx.out,
		Role:  fx.role,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.admin.Exec(ctx, script); err != nil {
		t.Fatalf("run the printed statements: %v\n%s", err, script)
	}
	fx.exec(ctx, t, "ALTER ROLE {role} PASSWORD '"+fx.password+"'")
}

// connectAs logs in as the agent's role over TCP.
func (fx *fixture) connectAs(ctx context.Context, t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig("host=127.0.0.1 port=5432 dbname=test sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = fx.role, fx.password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("log in as %s: %v", fx.role, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestPostgresGrantsForReal runs the printed statements on a real
// PostgreSQL, logs in as the new role and proves it can do the job and
// nothing more.
func TestPostgresGrantsForReal(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(ctx, t)
	fx.grant(ctx, t)
	// A table created after the grants, by the role that ran them: the
	// default privileges cover it.
	fx.exec(ctx, t, "CREATE TABLE {whole}.after_grants (id int); INSERT INTO {whole}.after_grants VALUES (5)")
	agent := fx.connectAs(ctx, t)
	r := strings.NewReplacer("{src}", q(fx.src), "{other}", q(fx.other), "{whole}", q(fx.whole), "{out}", q(fx.out))
	tests := []struct {
		name    string
		sql     string
		allowed bool
	}{
		{"read a granted table", "SELECT id FROM {src}.orders", true},
		{"read a granted table named with a space", `SELECT id FROM {src}."order items"`, true},
		{"read a granted table named with a quote", `SELECT id FROM {src}."a""b"`, true},
		{"read a table of a schema read whole", "SELECT id FROM {whole}.before_grants", true},
		{"read a table created after the grants", "SELECT id FROM {whole}.after_grants", true},
		{"lock a read table as the connector does", "BEGIN; LOCK TABLE {src}.orders IN ACCESS SHARE MODE; COMMIT", true},
		{"create a table in the output schema", "CREATE TABLE {out}.predictions (id int, score float8)", true},
		{"replace it as the writeback does", "BEGIN; CREATE TABLE {out}.staging (id int); INSERT INTO {out}.staging VALUES (1); DROP TABLE {out}.predictions; ALTER TABLE {out}.staging RENAME TO predictions; COMMIT", true},
		{"read the predictions back", "SELECT id FROM {out}.predictions", true},
		{"read a table of another schema", "SELECT id FROM {other}.secret", false},
		{"read an unlisted table of the read schema", "SELECT id FROM {src}.unlisted", false},
		{"create a table in the read schema", "CREATE TABLE {src}.evil (id int)", false},
		{"create a table in a schema read whole", "CREATE TABLE {whole}.evil (id int)", false},
		{"insert into a read table", "INSERT INTO {src}.orders VALUES (9)", false},
		{"update a read table", "UPDATE {src}.orders SET id = 9", false},
		{"delete from a read table", "DELETE FROM {src}.orders", false},
		{"truncate a read table", "TRUNCATE {src}.orders", false},
		{"drop a read table", "DROP TABLE {src}.orders", false},
		{"create a schema", "CREATE SCHEMA ferry_grants_evil_" + randomHex(t), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agent.Exec(ctx, r.Replace(tt.sql))
			if tt.allowed {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if _, rbErr := agent.Exec(ctx, "ROLLBACK"); rbErr != nil {
				t.Fatal(rbErr)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Fatalf("want permission denied (42501), got %v", err)
			}
		})
	}
}

// TestCheckPostgres runs the preflight as roles made in different ways: the
// minimal role passes clean, over-privileged roles pass with each extra
// privilege named, and roles missing one privilege fail naming it.
func TestCheckPostgres(t *testing.T) {
	type want struct {
		ok       bool
		warnings []string // each appears in one warning; no other warning
		missing  []string // each appears in one missing entry; nothing else
	}
	tests := []struct {
		name    string
		dialect grants.Dialect
		minimal bool   // run the statements ferry grants prints first
		setup   string // then this, as the admin
		read    []string
		want    want
	}{
		{
			name: "minimal role passes clean", minimal: true,
			want: want{ok: true},
		},
		{
			name: "minimal role, Redshift's catalog queries", dialect: grants.DialectRedshift, minimal: true,
			want: want{ok: true},
		},
		{
			name:  "superuser",
			setup: "CREATE ROLE {role} LOGIN SUPERUSER",
			want:  want{ok: true, warnings: []string{"superuser"}},
		},
		{
			name: "write on a read table and CREATE on the source schema", minimal: true,
			setup: "GRANT INSERT, DELETE ON {src}.orders TO {role}; GRANT CREATE ON SCHEMA {src} TO {role}",
			want:  want{ok: true, warnings: []string{"INSERT, DELETE on read table ferry_grants_src_", "CREATE on source schema ferry_grants_src_"}},
		},
		{
			name: "write on a read table, Redshift's catalog queries", dialect: grants.DialectRedshift, minimal: true,
			setup: "GRANT UPDATE ON {src}.orders TO {role}",
			want:  want{ok: true, warnings: []string{"UPDATE on read table ferry_grants_src_"}},
		},
		{
			name: "CREATEROLE, CREATEDB and pg_read_all_data", minimal: true,
			setup: "ALTER ROLE {role} CREATEROLE CREATEDB; GRANT pg_read_all_data TO {role}",
			want:  want{ok: true, warnings: []string{"CREATEROLE", "CREATEDB", "member of pg_read_all_data"}},
		},
		{
			name: "owner of a read table", minimal: true,
			setup: "ALTER TABLE {src}.orders OWNER TO {role}",
			want:  want{ok: true, warnings: []string{"owns read table ferry_grants_src_"}},
		},
		{
			name: "member of a superuser role", minimal: true,
			setup: "CREATE ROLE {boss} SUPERUSER NOLOGIN; GRANT {boss} TO {role}",
			want:  want{ok: true, warnings: []string{"which has SUPERUSER"}},
		},
		{
			name: "missing SELECT on one table", minimal: true,
			setup: `REVOKE SELECT ON {src}."order items" FROM {role}`,
			want:  want{missing: []string{`SELECT on table ferry_grants_src_`}},
		},
		{
			name: "missing USAGE on the read schema", minimal: true,
			setup: "REVOKE USAGE ON SCHEMA {src} FROM {role}",
			want:  want{missing: []string{"USAGE on schema ferry_grants_src_"}},
		},
		{
			name: "missing CREATE on the output schema", minimal: true,
			setup: "REVOKE CREATE ON SCHEMA {out} FROM {role}",
			want:  want{missing: []string{"CREATE on schema ferry_grants_out_"}},
		},
		{
			name: "a table that does not exist", minimal: true,
			read: []string{"orders", "nope"},
			want: want{missing: []string{"nope does not exist"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fx := newFixture(ctx, t)
			t.Cleanup(func() { fx.dropRole(t, fx.role+"_boss") })
			if tt.minimal {
				fx.grant(ctx, t)
			}
			if tt.setup != "" {
				fx.exec(ctx, t, tt.setup)
			}
			if !tt.minimal {
				fx.exec(ctx, t, "ALTER ROLE {role} PASSWORD '"+fx.password+"'")
			}
			read := tt.read
			if read == nil {
				read = []string{"orders", `"order items"`, fx.whole + ".before_grants"}
			}
			conn, target, err := grants.Connect(ctx, serverURL+"&schema="+fx.src, map[string]string{"user": fx.role, "password": fx.password})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			rep, err := grants.Check(ctx, conn, grants.CheckRequest{Dialect: tt.dialect, Schema: target.Schema, Read: read, Write: fx.out})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			if err := rep.Format(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("report:\n%s", text.String())
			if strings.Contains(text.String(), fx.password) {
				t.Fatal("the report holds the password")
			}
			if rep.Role != fx.role {
				t.Errorf("role %q, want %q", rep.Role, fx.role)
			}
			if rep.OK() != tt.want.ok {
				t.Errorf("OK() = %v, want %v; missing %q", rep.OK(), tt.want.ok, rep.Missing)
			}
			matchAll(t, "warning", rep.Warnings, tt.want.warnings)
			matchAll(t, "missing", rep.Missing, tt.want.missing)
		})
	}
}

// matchAll checks that got and want pair up one to one by substring.
func matchAll(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d %s entries %q, want %d matching %q", len(got), what, got, len(want), want)
		return
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no %s entry contains %q: %q", what, w, got)
		}
	}
}

// TestCheckNamesQuotedTables: a missing privilege on a table whose name
// needs quotes is named so that it can be typed back.
func TestCheckNamesQuotedTables(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(ctx, t)
	fx.grant(ctx, t)
	fx.exec(ctx, t, `REVOKE SELECT ON {src}."a""b" FROM {role}`)
	conn, _, err := grants.Connect(ctx, serverURL, map[string]string{"user": fx.role, "password": fx.password})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rep, err := grants.Check(ctx, conn, grants.CheckRequest{Read: []string{fx.src + `."a""b"`, fx.src + ".orders"}, Write: fx.out})
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT on table " + fx.src + `."a""b"`
	if len(rep.Missing) != 1 || rep.Missing[0] != want {
		t.Errorf("missing %q, want [%q]", rep.Missing, want)
	}
	if !rep.Reads[1].Readable || rep.Reads[0].Readable {
		t.Errorf("reads %+v: want only the second readable", rep.Reads)
	}
}

// TestConnectErrors: bad URLs are bad input, other kinds are not
// available, and no error holds the password.
func TestConnectErrors(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	creds := map[string]string{"user": "nobody", "password": secret}
	tests := []struct {
		url  string
		want error
		text string
	}{
		{"postgres://u:" + secret + "@127.0.0.1/test", grants.ErrInvalid, "credentials must not be in the URL"},
		{"postgres://127.0.0.1/test?bogus=1", grants.ErrInvalid, `unknown parameter "bogus"`},
		{"postgres://127.0.0.1/", grants.ErrInvalid, "one database name"},
		{"postgres://127.0.0.1/test?sslmode=maybe", grants.ErrInvalid, "sslmode"},
		{"duckdb:///tmp/x.db", grants.ErrUnavailable, "not available"},
		{"snowflake://acct/db", grants.ErrUnavailable, "connectors/snowflake/README.md"},
		{"postgres://127.0.0.1:1/test?connect_timeout=2s", nil, "connect to 127.0.0.1:1/test"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, _, err := grants.Connect(context.Background(), tt.url, creds)
			if err == nil {
				c.Close(context.Background())
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
}
