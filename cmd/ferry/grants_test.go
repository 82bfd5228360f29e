package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/internal/cli"
)

// ferryRun runs the ferry command in process and returns its exit code,
// stdout and stderr.
func ferryRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(context.Background(), args, &stdout, &stderr)
	code := cli.ExitCode(&stderr, "ferry", err, isUsage)
	return code, stdout.String(), stderr.String()
}

// TestGrantsCommand: each kind prints its statements (exit 0); bad input
// exits 2 with one line naming what is wrong.
func TestGrantsCommand(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // in stdout
		stderr string // in stderr
	}{
		{"postgres", []string{"grants", "postgres", "--read", `sales.orders,sales."order items"`, "--write", "ferry_out"}, 0,
			`GRANT SELECT ON TABLE "sales"."order items" TO "ferry_agent";`, ""},
		{"flags after and before the kind", []string{"grants", "--read", "sales", "redshift", "--write", "ferry_out", "--user", "bi"}, 0,
			`GRANT ROLE "ferry_agent" TO "bi";`, ""},
		{"repeated --read", []string{"grants", "postgres", "--read", "a.t", "--read", `a."a""b"`, "--write", "o"}, 0,
			`GRANT SELECT ON TABLE "a"."a""b" TO "ferry_agent";`, ""},
		{"snowflake", []string{"grants", "snowflake", "--read", "db.sales.orders", "--write", "db.out", "--warehouse", "wh"}, 0,
			`GRANT USAGE ON WAREHOUSE "WH" TO ROLE "FERRY_AGENT";`, ""},
		{"databricks", []string{"grants", "databricks", "--read", "main.sales", "--write", "main.out", "--user", "agent@example.com"}, 0,
			"GRANT SELECT ON SCHEMA `main`.`sales` TO `agent@example.com`;", ""},
		{"bigquery", []string{"grants", "bigquery", "--read", "my-project.sales", "--write", "my-project.out", "--user", "serviceAccount:a@my-project.iam.gserviceaccount.com"}, 0,
			"--role='roles/bigquery.readSessionUser'", ""},
		{"s3", []string{"grants", "s3", "--read", "s3://lake/sales", "--write", "s3://lake/ferry"}, 0,
			`"arn:aws:s3:::lake/sales/*"`, ""},
		{"help", []string{"grants", "--help"}, 0, "s3://bucket/prefix", ""},
		{"no kind", []string{"grants", "--read", "a", "--write", "b"}, 2, "", "takes one kind"},
		{"unknown kind", []string{"grants", "oracle", "--read", "a", "--write", "b"}, 2, "", `unknown kind "oracle"`},
		{"no --read", []string{"grants", "postgres", "--write", "b"}, 2, "", "--read"},
		{"malformed name", []string{"grants", "postgres", "--read", "sales.order items", "--write", "b"}, 2, "", `"order items" has ' '`},
		{"malformed URL", []string{"grants", "s3", "--read", "s3:/lake", "--write", "s3://lake/out"}, 2, "", `read "s3:/lake": want s3://bucket/prefix`},
		{"flag of another kind", []string{"grants", "s3", "--read", "s3://lake/a", "--write", "s3://lake/b", "--warehouse", "wh"}, 2, "", "s3 does not take --warehouse"},
		{"unknown flag", []string{"grants", "postgres", "--reed", "a", "--write", "b"}, 2, "", "-reed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := ferryRun(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q; stderr %q", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q: %q", tt.stderr, stderr)
			}
			if tt.code == 2 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
		})
	}
}

// TestCheckCommand runs `ferry check` against the local PostgreSQL with a
// role made from `ferry grants postgres`: a clean pass, a pass with
// warnings, a failure naming the table, bad input; the password never shows.
func TestCheckCommand(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	src, out, role, password := "ferry_cli_src_"+id, "ferry_cli_out_"+id, "ferry_cli_agent_"+id, "pw-"+id+"-Secret"
	t.Cleanup(func() {
		for _, sql := range []string{"DROP SCHEMA IF EXISTS " + src + " CASCADE", "DROP SCHEMA IF EXISTS " + out + " CASCADE", "DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := admin.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
		admin.Close(context.Background())
	})
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+src+"; CREATE TABLE "+src+".orders (id int); CREATE TABLE "+src+`."Order Items" (id int); CREATE TABLE `+src+".unlisted (id int)"); err != nil {
		t.Fatal(err)
	}
	code, script, stderr := ferryRun(t, "grants", "postgres", "--read", src+".orders,"+src+`."Order Items"`, "--write", out, "--role", role)
	if code != 0 {
		t.Fatalf("grants: exit %d: %s", code, stderr)
	}
	if _, err := admin.Exec(ctx, script+"ALTER ROLE "+role+" PASSWORD '"+password+"';"); err != nil {
		t.Fatalf("run the printed statements: %v\n%s", err, script)
	}
	dir := t.TempDir()
	creds := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(creds, []byte("user: "+role+"\npassword: "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.yaml")
	if err := os.WriteFile(open, []byte("user: "+role+"\npassword: "+password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wh := "postgres://127.0.0.1:5432/test?sslmode=disable&schema=" + src
	read := `orders,"Order Items"`
	tests := []struct {
		name   string
		setup  string // run as the admin first
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "minimal role passes clean", args: []string{"check", "--warehouse", wh, "--credentials", creds, "--read", read, "--write", out}, code: 0,
			stdout: []string{"ready: the role holds what the job needs and nothing more"}},
		{name: "agent check is the same", args: []string{"agent", "check", "--warehouse", wh, "--credentials", creds, "--read", read, "--write", out}, code: 0,
			stdout: []string{"ready: the role holds what the job needs and nothing more"}},
		{name: "a table it cannot read fails naming it", args: []string{"check", "--warehouse", wh, "--credentials", creds, "--read", read + ",unlisted", "--write", out}, code: 1,
			stdout: []string{"missing: SELECT on table " + src + ".unlisted"}, stderr: "missing SELECT on table " + src + ".unlisted"},
		{name: "write privilege on a read table warns", setup: "GRANT INSERT ON " + src + ".orders TO " + role,
			args: []string{"check", "--warehouse", wh, "--credentials", creds, "--read", read, "--write", out}, code: 0,
			stdout: []string{"warning: INSERT on read table " + src + ".orders", "ready, with 1 warning(s)"}},
		{name: "credentials readable by others", args: []string{"check", "--warehouse", wh, "--credentials", open, "--read", read, "--write", out}, code: 2, stderr: "chmod 600"},
		{name: "another kind is not available", args: []string{"check", "--warehouse", "duckdb:///tmp/x.db", "--read", "t", "--write", "o"}, code: 2, stderr: "not available"},
		{name: "credentials in the URL", args: []string{"check", "--warehouse", "postgres://" + role + ":" + password + "@127.0.0.1/test", "--read", "t", "--write", "o"}, code: 2, stderr: "must not be in the URL"},
		{name: "no --read", args: []string{"check", "--warehouse", wh, "--write", "o"}, code: 2, stderr: "needs --read"},
		{name: "a schema is not a table", args: []string{"check", "--warehouse", wh, "--credentials", creds, "--read", "a.b.c", "--write", "o"}, code: 2, stderr: "want table or schema.table"},
		{name: "unknown agent subcommand", args: []string{"agent", "run"}, code: 2, stderr: `unknown agent subcommand "run"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				if _, err := admin.Exec(ctx, tt.setup); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := ferryRun(t, tt.args...)
			t.Logf("stdout:\n%sstderr: %s", stdout, stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout does not contain %q", want)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q", tt.stderr)
			}
			if strings.Contains(stdout+stderr, password) {
				t.Error("the output holds the password")
			}
		})
	}
}
