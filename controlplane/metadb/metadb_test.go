package metadb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

func TestMigrateAndQuery(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		steps := []string{
			`CREATE TABLE notes (id {{id}}, body TEXT NOT NULL, raw {{blob}}, score {{float}} NOT NULL DEFAULT 0)`,
			`ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT ''; CREATE INDEX notes_by_tag ON notes(tag)`,
		}
		if err := db.Migrate(ctx, "notes", steps[:1]); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, "notes", steps); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, "notes", steps); err != nil {
			t.Fatalf("migrating twice: %v", err)
		}
		if v, err := db.Version(ctx, "notes"); err != nil || v != 2 {
			t.Fatalf("version %d %v, want 2", v, err)
		}
		if v, err := db.Version(ctx, "other"); err != nil || v != 0 {
			t.Fatalf("unknown component: version %d %v, want 0", v, err)
		}
		if err := db.Migrate(ctx, "notes", steps[:1]); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("an older binary: %v, want refused as newer", err)
		}
		for i, body := range []string{"a?b", "it's", "x"} {
			if _, err := db.Exec(ctx, `INSERT INTO notes (body, raw, score, tag) VALUES (?, ?, ?, 't')`, body, []byte{byte(i), 0}, 0.5+float64(i)); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		var sum float64
		if err := db.QueryRow(ctx, `SELECT count(*), sum(score) FROM notes WHERE tag = ? AND body <> '?'`, "t").Scan(&n, &sum); err != nil || n != 3 || sum != 4.5 {
			t.Fatalf("count %d sum %v %v", n, sum, err)
		}
		// A failed transaction leaves nothing behind.
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *metadb.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO notes (body, tag) VALUES (?, ?)`, "lost", "t"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, `SELECT count(*) FROM notes WHERE body = ?`, "lost").Scan(&n); err != nil || n != 0 {
			t.Errorf("a rolled-back insert is visible: %d %v", n, err)
		}
	})
}

func TestRebind(t *testing.T) {
	pg := &metadb.DB{Dialect: metadb.Postgres}
	for in, want := range map[string]string{
		"SELECT 1":                            "SELECT 1",
		"a = ? AND b = ?":                     "a = $1 AND b = $2",
		"a = '?' AND b = ? AND c = 'it''s ?'": "a = '?' AND b = $1 AND c = 'it''s ?'",
	} {
		if got := pg.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (&metadb.DB{Dialect: metadb.SQLite}).Rebind("a = ?"); got != "a = ?" {
		t.Errorf("SQLite rebind changed %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for target, want := range map[string]string{
		"":                  "want a file path",
		"/tmp/x.db?mode=ro": "without '?'",
		"postgres://u:secret@127.0.0.1:5432/test":                       "holds a password",
		"postgres://127.0.0.1:1/test?sslmode=disable&connect_timeout=2": "connect to 127.0.0.1:1/test",
	} {
		_, err := metadb.Open(ctx, target)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): %v, want an error with %q and no password", target, err, want)
		}
	}
}
