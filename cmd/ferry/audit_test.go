package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// TestAuditCommand: ferry audit verify says the chain is intact (exit 0)
// or names the first broken entry (exit 1), on SQLite, PostgreSQL and an
// export; ferry audit export writes JSON lines that verify offline; bad
// input exits 2 and the key never shows.
func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const key = "a-test-key-of-more-than-32-bytes-for-the-audit-chain"
	keyFile := filepath.Join(dir, "audit.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(dir, "open.key")
	if err := os.WriteFile(openKey, []byte(key), 0o644); err != nil {
		t.Fatal(err)
	}
	shortKey := filepath.Join(dir, "short.key")
	if err := os.WriteFile(shortKey, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A log of 5 entries on each database.
	fill := func(db *metadb.DB) {
		l, err := audit.Open(ctx, db, &audit.Options{Key: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			_, err := l.Append(ctx, audit.Entry{Tenant: "acme", ActorKind: audit.Admin, Actor: fmt.Sprintf("admin%d@acme.test", i),
				Action: "agent.enroll", Target: fmt.Sprintf("agent/a-%d", i), Outcome: audit.Success, Remote: "192.0.2.1:443"})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	sqlitePath := filepath.Join(dir, "ferry.db")
	sqliteDB, err := metadb.Open(ctx, sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	defer sqliteDB.Close()
	fill(sqliteDB)
	pg := metadbtest.Open(t, metadb.Postgres)
	fill(pg)
	var schema string
	if err := pg.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	pgURL := metadbtest.PostgresURL() + "&search_path=" + schema
	exported := filepath.Join(dir, "audit.jsonl")
	tampered := filepath.Join(dir, "tampered.jsonl")
	missing := filepath.Join(dir, "missing.db")
	emptyPath := filepath.Join(dir, "empty.db")
	empty, err := metadb.Open(ctx, emptyPath)
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()

	tests := []struct {
		name   string
		setup  func(t *testing.T)
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "verify SQLite", args: []string{"audit", "verify", "--db", sqlitePath, "--key-file", keyFile}, code: 0,
			stdout: "chain intact: 5 entries from seq 1 to 5 (hmac-sha256)"},
		{name: "verify PostgreSQL", args: []string{"audit", "verify", "--db", pgURL, "--key-file", keyFile}, code: 0,
			stdout: "chain intact: 5 entries from seq 1 to 5 (hmac-sha256)"},
		{name: "export to a file", args: []string{"audit", "export", "--db", sqlitePath, "--key-file", keyFile, "--output", exported}, code: 0,
			stderr: "exported 5 audit entries"},
		{name: "verify the export", args: []string{"audit", "verify", "--export", exported, "--key-file", keyFile}, code: 0,
			stdout: "chain intact: 5 entries from seq 1 to 5"},
		{name: "export to stdout", args: []string{"audit", "export", "--db", pgURL, "--key-file", keyFile, "--since", "2000-01-01", "--action", "agent."}, code: 0,
			stdout: `"seq":5,`, stderr: "exported 5 audit entries"},
		{name: "export since an hour ago", args: []string{"audit", "export", "--db", sqlitePath, "--key-file", keyFile, "--since", "1h"}, code: 0,
			stdout: `"actor":"admin3@acme.test"`},
		{name: "export nothing since the future", args: []string{"audit", "export", "--db", sqlitePath, "--key-file", keyFile, "--since", "2999-01-01T00:00:00Z"}, code: 0,
			stderr: "exported 0 audit entries"},
		{name: "no key for a keyed log", args: []string{"audit", "verify", "--db", sqlitePath}, code: 1,
			stderr: "the log is keyed (hmac-sha256): give its key"},
		{name: "an edited entry", setup: func(t *testing.T) {
			if _, err := sqliteDB.Exec(ctx, `UPDATE audit_subject SET actor = 'mallory@evil.test' WHERE seq = 3`); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"audit", "verify", "--db", sqlitePath, "--key-file", keyFile}, code: 1,
			stdout: "entry 3 edited", stderr: "the audit log is broken: entry 3 edited: its actor, target, remote address or details differ"},
		{name: "a deleted entry on PostgreSQL", setup: func(t *testing.T) {
			if _, err := pg.Exec(ctx, `DELETE FROM audit_log WHERE seq = 2`); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"audit", "verify", "--db", pgURL, "--key-file", keyFile}, code: 1,
			stderr: "entry 2 deleted: entry 2 is missing (the next is 3)"},
		{name: "a tampered export", setup: func(t *testing.T) {
			b, err := os.ReadFile(exported)
			if err != nil {
				t.Fatal(err)
			}
			s := strings.Replace(string(b), `"outcome":"success"`, `"outcome":"denied"`, 2)
			if err := os.WriteFile(tampered, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"audit", "verify", "--export", tampered, "--key-file", keyFile}, code: 1,
			stderr: "entry 1 (line 2) edited"},
		{name: "not an export", args: []string{"audit", "verify", "--export", keyFile, "--key-file", keyFile}, code: 2,
			stderr: "not a ferry audit export header"},
		{name: "key file readable by others", args: []string{"audit", "verify", "--db", sqlitePath, "--key-file", openKey}, code: 2,
			stderr: "chmod 600"},
		{name: "short key", args: []string{"audit", "verify", "--db", sqlitePath, "--key-file", shortKey}, code: 2,
			stderr: "holds 5 bytes: want a key of at least 32"},
		{name: "missing database", args: []string{"audit", "verify", "--db", missing}, code: 2,
			stderr: "no such SQLite database"},
		{name: "not a database", args: []string{"audit", "verify", "--db", keyFile}, code: 1},
		{name: "a database without an audit log", args: []string{"audit", "verify", "--db", emptyPath}, code: 2,
			stderr: "audit: no audit log in " + emptyPath},
		{name: "both --db and --export", args: []string{"audit", "verify", "--db", sqlitePath, "--export", exported}, code: 2,
			stderr: "one of --db or --export"},
		{name: "bad --since", args: []string{"audit", "export", "--db", sqlitePath, "--since", "yesterday"}, code: 2,
			stderr: `--since "yesterday": want an RFC 3339 time`},
		{name: "bad --outcome", args: []string{"audit", "export", "--db", sqlitePath, "--key-file", keyFile, "--outcome", "ok"}, code: 2,
			stderr: `outcome "ok"`},
		{name: "unknown subcommand", args: []string{"audit", "prune"}, code: 2, stderr: `unknown audit subcommand "prune"`},
		{name: "help", args: []string{"audit", "--help"}, code: 0, stdout: "verify --export FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			code, stdout, stderr := ferryRun(t, tt.args...)
			t.Logf("stdout:\n%sstderr: %s", stdout, stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q", tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q", tt.stderr)
			}
			if strings.Contains(stdout+stderr, key) {
				t.Error("the output holds the key")
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("verify created a database at the missing path: %v", err)
	}
	if st, err := os.Stat(exported); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the export file: %v %v, want mode 0600", st.Mode(), err)
	}
}
